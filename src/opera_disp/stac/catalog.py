"""Write a self-contained STAC catalog of a job's outputs (one collection, relative hrefs).

:func:`write_catalog` takes plain descriptions of items (:class:`ItemSpec`, each with its
:class:`AssetSpec` s) and writes, inside the output folder::

    catalog.json                                 the root (written last)
    <collection>/collection.json                 exactly one collection
    <collection>/<item>/<item>.json              one file per item

Every href is relative, so the folder can be moved or published as it is (MAAP's DPS
ingests ``output/catalog.json`` this way). GeoTIFF assets get the ``proj``, ``raster`` and
``file`` extensions from the file itself (:mod:`opera_disp.stac.raster`); every file asset
gets its size and multihash SHA-256; the collection's extent covers every item and its
processor names the software and version (``processing`` extension).

Each file is written atomically (write, then rename), items and collection first and the
root last: a reader who finds ``catalog.json`` finds everything it links. Item files of an
earlier catalog that the new one no longer lists are removed afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import (
    DataType,
    NoDataStrings,
    RasterBand,
    RasterExtension,
    Statistics,
)

from .. import __version__
from ..files import UnsafePath, remove_inside, safe_mkdir, sha256_file, write_json
from .raster import RasterFacts, raster_facts

CATALOG_NAME: Final = "catalog.json"
#: The root catalog's id: how :func:`remove_catalog` recognises a catalog it may remove.
CATALOG_ID: Final = "opera-disp"
PROCESSING_SCHEMA: Final = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"

COG: Final = "image/tiff; application=geotiff; profile=cloud-optimized"
PNG: Final = "image/png"
JSON: Final = "application/json"
NETCDF: Final = "application/x-netcdf"
ZARR: Final = "application/vnd+zarr"
_BY_SUFFIX: Final = {".tif": COG, ".tiff": COG, ".png": PNG, ".json": JSON, ".nc": NETCDF,
                     ".zarr": ZARR}


@dataclass(frozen=True)
class AssetSpec:
    """One asset of an item: a file (or a Zarr folder) inside the output folder.

    Parameters
    ----------
    key
        The asset's key in the item (e.g. the layer name).
    path
        The file, absolute or relative to the output folder; it must lie inside it.
    roles
        STAC roles: ``data``, ``thumbnail``, ``overview``, ``metadata`` …
    media_type
        None: from the suffix (``.tif`` a COG, ``.png``, ``.json``, ``.nc`` netCDF,
        ``.zarr`` Zarr).
    title, description
        Shown by STAC browsers.
    checksum
        Record the file's size and multihash SHA-256 (``file`` extension). False for a
        file that changes after the catalog is written (``summary.json``).
    size, sha256
        Already known (the job's summary has them): saves reading the file again.
    facts
        A GeoTIFF's :class:`~opera_disp.stac.raster.RasterFacts`, already read where the
        file was written: the file is not opened.
    elsewhere
        The file was uploaded from where it was made (a dask worker's object-store
        upload) and is not on this machine: ``size`` and ``sha256`` (and ``facts`` for a
        GeoTIFF) must then be given; every other asset must exist here.
    """

    key: str
    path: Path
    roles: tuple[str, ...]
    media_type: str | None = None
    title: str | None = None
    description: str | None = None
    checksum: bool = True
    size: int | None = None
    sha256: str | None = None
    facts: RasterFacts | None = None
    elsewhere: bool = False

    def __post_init__(self) -> None:
        if self.elsewhere and (self.size is None or self.sha256 is None or (
                self.facts is None and (self.media_type or media_type(self.path)) == COG)):
            raise ValueError(f"asset {str(self.path)!r} is elsewhere: its size, SHA-256 "
                             "(and a GeoTIFF's facts) must be given")


@dataclass(frozen=True)
class ItemSpec:
    """One item: an id, its times, its properties and its assets.

    ``datetime`` is the item's nominal time; ``start``/``end`` the interval it covers
    (either may be None; with ``datetime`` None both are required, as STAC asks). The
    geometry and bbox are the lon/lat footprint of the first GeoTIFF asset unless
    ``geometry`` (GeoJSON, lon/lat) is given. ``stac_extensions`` names the schemas of
    extension fields in ``properties`` (``proj``, ``raster``, ``file`` and ``processing``
    are added as needed).
    """

    id: str
    datetime: dt.datetime | None
    assets: tuple[AssetSpec, ...]
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    geometry: Mapping[str, Any] | None = None
    title: str | None = None
    stac_extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CollectionSpec:
    """The collection's id and descriptive fields."""

    id: str
    description: str
    title: str | None = None
    keywords: tuple[str, ...] = ()
    license: str = "other"
    providers: tuple[pystac.Provider, ...] = ()


@dataclass(frozen=True)
class WrittenFile:
    """One file of the catalog: path relative to the output folder, size, SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class CatalogWritten:
    """What :func:`write_catalog` wrote: the root first, then the collection and items."""

    collection: str
    items: int
    files: tuple[WrittenFile, ...]

    @property
    def root(self) -> WrittenFile:
        """``catalog.json``."""
        return self.files[0]


def media_type(path: Path) -> str | None:
    """The media type a file's suffix implies (None if unknown).

    Examples
    --------
    >>> media_type(Path("a_displacement.tif")) == COG, media_type(Path("cube.zarr"))
    (True, 'application/vnd+zarr')
    """
    return _BY_SUFFIX.get(path.suffix.lower())


def software() -> dict[str, str]:
    """The ``processing:software`` of every object this package writes."""
    return {"opera-disp": __version__}


def _raster_extensions(asset: pystac.Asset, facts: RasterFacts) -> None:
    proj = ProjectionExtension.ext(asset, add_if_missing=True)
    proj.apply(code=facts.code, shape=list(facts.shape), transform=list(facts.transform),
               bbox=list(facts.bounds))
    bands = []
    for b in facts.bands:
        stats = Statistics.create(minimum=b.minimum, maximum=b.maximum, mean=b.mean,
                                  stddev=b.stddev, valid_percent=b.valid_percent)
        stats.properties = {k: v for k, v in stats.properties.items() if v is not None}
        nodata = NoDataStrings(b.nodata) if isinstance(b.nodata, str) else b.nodata
        bands.append(RasterBand.create(nodata=nodata, data_type=DataType(b.data_type),
                                       unit=b.unit, statistics=stats))
    RasterExtension.ext(asset, add_if_missing=True).apply(bands)


def _asset(spec: AssetSpec, file: Path, item_dir: Path) -> tuple[pystac.Asset,
                                                                  RasterFacts | None]:
    kind = spec.media_type or media_type(file)
    asset = pystac.Asset(href=os.path.relpath(file, item_dir), media_type=kind,
                         roles=list(spec.roles), title=spec.title,
                         description=spec.description)
    if kind != COG:
        return asset, None
    return asset, spec.facts if spec.facts is not None else raster_facts(file)


def _extend(asset: pystac.Asset, spec: AssetSpec, file: Path, facts: RasterFacts | None
            ) -> None:
    """The ``file`` extension (and ``proj``/``raster`` for GeoTIFFs) of an owned asset."""
    if spec.checksum and (spec.elsewhere or file.is_file()):  # a folder (Zarr) has none
        size = spec.size if spec.size is not None else file.stat().st_size
        digest = spec.sha256 or sha256_file(file)
        # Multihash: 0x12 = sha2-256, 0x20 = 32 bytes, then the digest.
        FileExtension.ext(asset, add_if_missing=True).apply(size=size,
                                                            checksum=f"1220{digest}")
    if facts is not None:
        _raster_extensions(asset, facts)


def _inside(folder: Path, path: Path, *, must_exist: bool = True) -> Path:
    file = path if path.is_absolute() else folder / path
    if not file.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"asset {str(path)!r} is outside the output folder {str(folder)!r}")
    if must_exist and not file.exists():
        raise FileNotFoundError(f"asset {str(file)!r} does not exist")
    return file


def _item(folder: Path, collection_dir: Path, spec: ItemSpec) -> pystac.Item:
    item_dir = collection_dir / spec.id
    assets = []
    geometry: dict[str, Any] | None = dict(spec.geometry) if spec.geometry is not None else None
    bbox: list[float] | None = None
    for a in spec.assets:
        file = _inside(folder, a.path, must_exist=not a.elsewhere)
        asset, facts = _asset(a, file, item_dir)
        assets.append((a, file, asset, facts))
        if geometry is None and facts is not None:
            geometry, bbox = facts.geometry, list(facts.bbox)
    if geometry is None:
        raise ValueError(f"item {spec.id!r}: no geometry given and no GeoTIFF asset to take "
                         "it from")
    if bbox is None:
        from shapely.geometry import shape

        bbox = list(shape(geometry).bounds)
    props = {**spec.properties, "processing:software": software()}
    if spec.title:
        props["title"] = spec.title
    item = pystac.Item(id=spec.id, geometry=geometry, bbox=bbox, datetime=spec.datetime,
                       start_datetime=spec.start, end_datetime=spec.end, properties=props,
                       stac_extensions=[PROCESSING_SCHEMA, *spec.stac_extensions])
    for a, file, asset, facts in assets:
        item.add_asset(a.key, asset)
        _extend(asset, a, file, facts)
    return item


def _extent(items: Sequence[pystac.Item]) -> pystac.Extent:
    boxes = [i.bbox for i in items if i.bbox]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes)]
    times = [t for i in items for t in (i.datetime, i.common_metadata.start_datetime,
                                        i.common_metadata.end_datetime) if t is not None]
    return pystac.Extent(pystac.SpatialExtent([bbox]),
                         pystac.TemporalExtent([[min(times), max(times)]]))


def write_catalog(folder: str | Path, collection: CollectionSpec | str,
                  items: Sequence[ItemSpec], *, description: str | None = None,
                  tmp_dir: Path | None = None) -> CatalogWritten:
    """Write ``folder/catalog.json``: a self-contained catalog with one collection.

    Parameters
    ----------
    folder
        The output folder; every asset must lie inside it.
    collection
        The collection (or just its id).
    items
        At least one item; ids must be unique.
    description
        The root catalog's description.
    tmp_dir
        Where the temporary files are made (on the same file system as ``folder``).

    Returns
    -------
    CatalogWritten
        The files written (root first), with sizes and SHA-256.

    Raises
    ------
    ValueError
        No items, duplicate ids, an asset outside ``folder``, or an item without geometry.

    Examples
    --------
    >>> import tempfile, numpy as np, rasterio
    >>> from datetime import UTC, datetime
    >>> from rasterio.transform import from_origin
    >>> out = Path(tempfile.mkdtemp())
    >>> with rasterio.open(out / "d.tif", "w", driver="GTiff", width=4, height=4, count=1,
    ...                    dtype="float32", crs="EPSG:32613",
    ...                    transform=from_origin(500000, 40, 10, 10)) as dst:
    ...     dst.write(np.ones((4, 4), "float32"), 1)
    >>> item = ItemSpec("d", datetime(2020, 1, 1, tzinfo=UTC),
    ...                 (AssetSpec("data", Path("d.tif"), ("data",)),))
    >>> written = write_catalog(out, "example", [item])
    >>> [f.path for f in written.files]
    ['catalog.json', 'example/collection.json', 'example/d/d.json']
    """
    folder = Path(folder)
    coll = collection if isinstance(collection, CollectionSpec) else \
        CollectionSpec(id=collection, description=f"Outputs of opera-disp ({collection}).")
    if not items:
        raise ValueError("a catalog needs at least one item")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"item ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
    collection_dir = folder / coll.id
    stac_items = [_item(folder, collection_dir, spec) for spec in items]

    providers = [*coll.providers,
                 pystac.Provider("opera-disp", roles=[pystac.ProviderRole.PROCESSOR],
                                 extra_fields={"processing:software": software()})]
    stac_coll = pystac.Collection(
        id=coll.id, description=coll.description, title=coll.title,
        extent=_extent(stac_items), license=coll.license, keywords=list(coll.keywords),
        providers=providers, stac_extensions=[PROCESSING_SCHEMA])
    catalog = pystac.Catalog(id=CATALOG_ID, description=description or
                             "Outputs of an opera-disp job.",
                             catalog_type=pystac.CatalogType.SELF_CONTAINED)
    catalog.add_child(stac_coll)
    stac_coll.add_items(stac_items)
    catalog.normalize_hrefs(str(folder.resolve()))

    # Items, then the collection, then the root: the rename of catalog.json publishes it.
    # Where each goes is the layout above, not its href: URL parsing drops characters a
    # folder's name may hold (a newline), which would write beside the folder.
    written: list[WrittenFile] = []
    for obj, rel in [*((i, Path(coll.id, i.id, f"{i.id}.json")) for i in stac_items),
                     (stac_coll, Path(coll.id, "collection.json")),
                     (catalog, Path(CATALOG_NAME))]:
        # Folders made here, never followed: a planted link is replaced, not written through.
        safe_mkdir(folder, rel.parent, replace_links=True)
        path = folder / rel
        doc = obj.to_dict(include_self_link=False, transform_hrefs=True)
        write_json(path, doc, tmp_dir=tmp_dir, root=folder)
        written.append(WrittenFile(str(rel), path.stat().st_size, sha256_file(path)))
    _remove_stale_items(collection_dir, {Path(f.path).name for f in written})
    files = (written[-1], written[-2], *written[:-2])
    return CatalogWritten(collection=coll.id, items=len(stac_items), files=files)


def _remove_stale_items(collection_dir: Path, keep: set[str]) -> None:
    """Remove item files an earlier catalog of this collection left (and their folders)."""
    for path in collection_dir.glob("*/*.json"):
        if path.name in keep or path.stem != path.parent.name or path.parent.is_symlink() \
                or path.is_symlink():  # an item folder or file of ours is never a link
            continue
        if _is_item_of(path, collection_dir.name):
            path.unlink(missing_ok=True)
            _rmdir(path.parent)


def _is_item_of(path: Path, collection_id: str) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" \
        and doc.get("collection") == collection_id


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (someone else's file) or gone: leave it
        path.rmdir()


def remove_catalog(folder: str | Path, recorded: Sequence[Mapping[str, Any]]) -> list[str]:
    """Remove the catalog an earlier job wrote into ``folder``: ``catalog.json`` first,
    then its collection and item files (and their emptied folders).

    Only the files ``recorded`` lists (the earlier job's summary: ``path``, ``bytes``,
    ``sha256`` relative to ``folder``) are removed, each only if it is still a plain file
    inside ``folder`` (reached without a symlink) with that size and checksum: never a file
    a catalog merely names, nor one changed since. Returns the paths removed.

    Examples
    --------
    >>> import tempfile
    >>> remove_catalog(tempfile.mkdtemp(), [])
    []
    """
    folder = Path(folder)
    removed = []
    # The root first: a reader never finds a catalog.json linking to removed files.
    ordered = sorted(recorded, key=lambda f: f.get("path") != CATALOG_NAME)
    for f in ordered:
        rel, size, digest = f.get("path"), f.get("bytes"), f.get("sha256")
        if not isinstance(rel, str) or Path(rel).suffix != ".json" or \
                not isinstance(size, int) or not isinstance(digest, str):
            continue
        try:
            if not remove_inside(folder, rel, size=size, sha256=digest):
                continue
        except (UnsafePath, OSError):
            continue
        removed.append(rel)
        here = (folder / rel).parent
        while here != folder and folder in here.parents:  # emptied folders, never a link's
            _rmdir(here)
            here = here.parent
    return removed
