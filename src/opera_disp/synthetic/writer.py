"""The HDF5 writer of synthetic, spec-faithful OPERA L3 DISP-S1 v1.0 granules.

The generator follows the product writer's layout (see the DISP-S1 format notes): file
names, the 11 root layers with their dtypes, fill values and attributes, the ``x``/``y``/
``time``/``reference_time``/``spatial_ref`` variables, the ``/identification``,
``/metadata`` and ``/corrections`` groups, 256x256 chunks with shuffle + deflate 4, and
4 MiB paged file space (so all metadata sits in the first page, as in real files).

Content comes from :mod:`opera_disp.synthetic.scene`.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     paths = write_archive(d, n_dates=3, shape=(300, 280))
...     [p.name[:34] for p in paths]
['OPERA_L3_DISP-S1_IW_F40291_VV_2016', 'OPERA_L3_DISP-S1_IW_F40291_VV_2016', \
'OPERA_L3_DISP-S1_IW_F40291_VV_2016']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import h5netcdf
import numpy as np
from pyproj import CRS, Transformer

from ..files import atomic_path
from ..product import DispProduct
from ..profile import DISP_S1
from .scene import (
    DEFAULT_FRAME,
    REFERENCE_EVERY,
    SIM_THRESHOLD,
    TCOH_THRESHOLD,
    WAVELENGTH,
    FrameGeo,
    Scene,
    acquisition_dates,
    frame_geo,
    pairs,
    reference_pixel,
    round_mantissa,
    years_since_first,
)
from .scene import noise as _noise

if TYPE_CHECKING:
    import h5py

log = logging.getLogger(__name__)


_GEN = datetime(2025, 7, 24, 21, 22, 4, tzinfo=UTC)
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
_BAND = 1024


def _bands(height: int, step: int = _BAND) -> Iterator[tuple[int, int]]:
    for r0 in range(0, height, step):
        yield r0, min(height, r0 + step)


def _crs_attrs(epsg: int, gt: list[float]) -> dict[str, object]:
    attrs: dict[str, object] = dict(CRS.from_epsg(epsg).to_cf())
    attrs["GeoTransform"] = " ".join(str(v) for v in gt)
    attrs["units"] = "unitless"
    attrs["long_name"] = "Dummy variable with geo-referencing metadata in attributes"
    return attrs


def _write_grid_vars(grp: h5netcdf.Group, xs: np.ndarray, ys: np.ndarray, epsg: int,
                     gt: list[float], sec_seconds: float, ref_seconds: float | None,
                     time_long: str) -> None:
    grp.dimensions = {"y": len(ys), "x": len(xs), "time": 1}
    sr = grp.create_variable("spatial_ref", (), "i8", data=np.int64(0))
    sr.attrs.update(_crs_attrs(epsg, gt))
    for name, vals, std, long in (
        ("y", ys, "projection_y_coordinate", "y coordinate of projection"),
        ("x", xs, "projection_x_coordinate", "x coordinate of projection"),
    ):
        var = grp.create_variable(name, (name,), "f8", data=vals)
        var.attrs.update({"standard_name": std, "long_name": long, "units": "m"})
    units = "seconds since " + _EPOCH.strftime("%Y-%m-%d %H:%M:%S.%f")
    tv = grp.create_variable("time", ("time",), "f8", data=np.array([sec_seconds]))
    tv.attrs.update({"standard_name": "time", "long_name": time_long,
                     "calendar": "standard", "units": units})
    if ref_seconds is not None:
        rv = grp.create_variable("reference_time", ("time",), "f8", data=np.array([ref_seconds]))
        rv.attrs.update({"standard_name": "time", "calendar": "standard", "units": units,
                         "long_name": "Time corresponding to beginning of reference acquisition"})


def _raster(grp: h5netcdf.Group, name: str, dtype: str, fill: float | int) -> h5netcdf.Variable:
    # HDF5 forbids chunks larger than the data: tiny test grids get smaller chunks.
    chunk = DISP_S1.chunk
    chunks = (min(chunk, grp.dimensions["y"].size), min(chunk, grp.dimensions["x"].size))
    return grp.create_variable(
        name, ("y", "x"), dtype, chunks=chunks, compression="gzip",
        compression_opts=4, shuffle=True, fillvalue=np.array(fill, dtype=dtype),
    )


def _strings(h5grp: h5py.Group, items: dict[str, object]) -> None:
    for key, value in items.items():
        if isinstance(value, str):
            h5grp.create_dataset(key, data=np.bytes_(value))
        else:
            h5grp.create_dataset(key, data=value)
        h5grp[key].attrs["description"] = key.replace("_", " ").capitalize()


def write_granule(
    directory: str | Path,
    *,
    frame: int = DEFAULT_FRAME,
    shape: tuple[int, int] = (1024, 1280),
    n_dates: int = 1,
    index: int = 1,
    seed: int = 0,
    generation: datetime = _GEN,
    version: str = DISP_S1.versions[0],
    noise: bool = True,
    mantissa_rounding: bool = True,
    reference_every: int = REFERENCE_EVERY,
    step: tuple[int, float] | None = None,
) -> Path:
    """Write one synthetic granule: the ``index``-th product of a frame's series.

    Parameters
    ----------
    directory : path
        Output folder (created if needed).
    frame : int
        Frame number; its placement comes from :func:`frame_geo`.
    shape : (rows, cols)
        Grid shape; real frames are about 7915 x 9548.
    n_dates : int
        Length of the series (only used to place the moving reference).
    index : int
        Which product of the series (1-based secondary index).
    seed : int
        Seed for all random content.
    generation, version
        Production time and product version written into the name and
        ``/identification``; the production time also picks the layers' dtypes
        (:meth:`~opera_disp.profile.ProductProfile.layer_dtype`: displacement is float64
        from late 2025).
    noise : bool
        Add the per-date atmospheric screen and per-product white noise. Without them the
        displacement is exactly the ground motion of :func:`~opera_disp.synthetic.truth`
        plus the corrections (up to float32 rounding).
    mantissa_rounding : bool
        Round float layers' mantissas as the real writer does (``False`` stores them as
        computed, so exact recovery can be tested).
    reference_every : int
        How many acquisitions the moving reference date stays fixed (:func:`pairs`).
    step : (date index, metres), optional
        A step of the ground on and after that date, over the frame's east half
        (:meth:`~opera_disp.synthetic.scene.Scene.step_field`); :func:`truth` with the same
        ``step`` has it.

    Notes
    -----
    ``displacement`` is the ground displacement from the reference to the secondary date
    plus ``solid_earth_tide`` and ``ionospheric_delay`` (each the secondary date's field
    minus the reference date's), all relative to the product's reference point
    (:func:`reference_pixel`), where it is therefore 0 and, as the real writer does with
    exact zeros, stored as NaN. Subtracting the ``/corrections`` layers recovers the ground
    motion (and the noise, when on).

    Returns
    -------
    Path
        The written ``.nc`` file.
    """
    h, w = shape
    if h < 2 or w < 2:
        raise ValueError(f"shape {shape} is too small; need at least 2 x 2 pixels")
    geo = frame_geo(frame)
    dates = acquisition_dates(max(n_dates, index))
    ref_i, sec_i = pairs(max(n_dates, index), reference_every)[index - 1]
    ref, sec = dates[ref_i], dates[sec_i]
    product = DispProduct(frame, ref.replace(microsecond=0), sec.replace(microsecond=0), version,
                          generation)
    layers = {layer.name: layer for layer in DISP_S1.layers_of(generation)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / product.filename
    gt = [geo.x0, 30.0, 0.0, geo.y0, 0.0, -30.0]
    xs = geo.x0 + 15.0 + 30.0 * np.arange(w)
    ys = geo.y0 - 15.0 - 30.0 * np.arange(h)
    scene = Scene(shape, seed + frame)
    years = years_since_first(dates)
    ref_row, ref_col = reference_pixel(shape)
    t_ref, t_sec = years[ref_i], years[sec_i]

    def motion(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """What the product measures, before referencing: ground, SET, iono (+ atmosphere)."""
        rate, seasonal = scene.ground_terms(u, v)
        out = (rate * (t_sec - t_ref)
               + seasonal * (math.sin(2 * math.pi * t_sec) - math.sin(2 * math.pi * t_ref))
               + scene.tide(sec_i, u, v) - scene.tide(ref_i, u, v)
               + scene.iono(sec_i, u, v) - scene.iono(ref_i, u, v))
        if step is not None:
            out = out + scene.step_field(u, v, step[1]) * (
                float(sec_i >= step[0]) - float(ref_i >= step[0]))
        if noise:
            out = out + scene.atmosphere(sec_i, u, v) - scene.atmosphere(ref_i, u, v)
        return out

    def white(r0: int, r1: int, low: np.ndarray) -> np.ndarray:
        return _noise(seed * 7919 + sec_i, r0, (r1 - r0, w), 0.002 + 0.01 * float(low.mean()))

    # The product is referenced to its reference point: its value there is subtracted.
    up, vp = scene.point(ref_row, ref_col)
    at_ref = float(motion(up, vp)[0, 0])
    if noise:
        rb0 = ref_row - ref_row % _BAND
        rb1 = min(h, rb0 + _BAND)
        at_ref += float(white(rb0, rb1, scene.static(rb0, rb1)["low"])[ref_row - rb0, ref_col])
    tilt_at_ref = 0.004 * (float(up[0, 0]) - 0.5) * (t_sec - t_ref)

    with atomic_path(path) as tmp, h5netcdf.File(tmp, "w", fs_strategy="page",
                                                 fs_page_size=DISP_S1.page_size,
                                                 track_order=True) as f:
        f.attrs.update({
            "Conventions": "CF-1.8", "contact": "opera-sds-ops@jpl.nasa.gov",
            "institution": "NASA JPL", "mission_name": "OPERA",
            "reference_document": "JPL D-108765", "title": DISP_S1.title,
        })
        _write_grid_vars(f, xs, ys, geo.epsg, gt, (sec - _EPOCH).total_seconds(),
                         (ref - _EPOCH).total_seconds(),
                         "Time corresponding to beginning of secondary acquisition")
        vars_ = {}
        for name, layer in layers.items():
            var = _raster(f, name, layer.dtype, layer.fill)
            var.attrs["units"] = layer.units
            if name == "short_wavelength_displacement":
                var.attrs["wavelength_cutoff"] = "30000.0"
                var.attrs["wavelength_cutoff_units"] = "meters"
            if name == "recommended_mask":
                var.attrs["similarity_threshold"] = str(SIM_THRESHOLD)
                var.attrs["temporal_coherence_threshold"] = str(TCOH_THRESHOLD)
                var.attrs["estimated_phase_quality_threshold"] = "0.001"
                var.attrs["uses_connected_component_labels"] = "False"
            var.attrs["description"] = layer.description
            var.attrs["long_name"] = layer.long_name
            var.attrs["grid_mapping"] = "spatial_ref"
            vars_[name] = var

        nodata_count = 0
        tcoh_sum, tcoh_n = 0.0, 0
        for r0, r1 in _bands(h):
            st = scene.static(r0, r1)
            bshape = (r1 - r0, w)
            nod = np.broadcast_to(st["nodata"], bshape)
            water = np.broadcast_to(st["water"], bshape)
            low = np.broadcast_to(st["low"], bshape)
            u, v = st["u"], st["v"]
            disp64 = motion(u, v) - at_ref
            if noise:
                disp64 = disp64 + white(r0, r1, low)
            disp = np.broadcast_to(disp64, bshape).astype(layers["displacement"].dtype)
            tcoh = np.clip(0.92 - 0.75 * low + _noise(seed + 11, r0, bshape, 0.05), 0, 1)
            sim = np.clip(0.85 - 0.7 * low + _noise(seed + 13 + sec_i, r0, bshape, 0.06), -1, 1)
            epq = np.clip(tcoh * 0.9 + _noise(seed + 17 + sec_i, r0, bshape, 0.03), 0, 1)
            bad = water | ((tcoh < TCOH_THRESHOLD) & (sim < SIM_THRESHOLD))
            mask = np.where(bad, 0, 1).astype(np.uint8)
            ccl = np.where(low > 0.8, 0, 1 + (np.broadcast_to(st["u"], bshape) > 0.5)).astype(
                np.uint16)
            ps = (_noise(seed + 19, r0, bshape, 1.0) > 2.3).astype(np.uint8)
            shp = np.clip(60 - 50 * low + _noise(seed + 23, r0, bshape, 8.0), 1, 121).astype(
                np.int16)
            resid = np.abs(_noise(seed + 29 + sec_i, r0, bshape, 0.3)) + 0.5 * low
            # Short wavelength: remove the pair's smooth east-west tilt (long wavelength).
            tilt = 0.004 * (np.broadcast_to(u, bshape) - 0.5) * (t_sec - t_ref) - tilt_at_ref
            swd = disp - tilt.astype(np.float32)
            swd = np.where(mask == 0, np.nan, swd).astype(np.float32)
            data: dict[str, np.ndarray] = {
                "displacement": disp,
                "short_wavelength_displacement": swd,
                "recommended_mask": mask,
                "connected_component_labels": ccl,
                "temporal_coherence": tcoh.astype(np.float32),
                "estimated_phase_quality": epq.astype(np.float32),
                "persistent_scatterer_mask": ps,
                "shp_counts": shp,
                "water_mask": np.where(water, 0, 1).astype(np.uint8),
                "phase_similarity": sim.astype(np.float32),
                "timeseries_inversion_residuals": resid.astype(np.float32),
            }
            if r0 <= ref_row < r1:  # 0 at the reference point: nodata, as the real writer does
                data["displacement"][ref_row - r0, ref_col] = np.nan
                data["short_wavelength_displacement"][ref_row - r0, ref_col] = np.nan
            for name, arr in data.items():
                layer = layers[name]
                arr = np.array(arr, dtype=layer.dtype)
                arr[nod] = layer.fill
                if layer.keep_bits is not None and mantissa_rounding:
                    arr = round_mantissa(arr, layer.keep_bits)
                vars_[name][r0:r1, :] = arr
            nodata_count += int(np.count_nonzero(~np.isfinite(data["displacement"]) | nod))
            valid_t = data["temporal_coherence"][~nod]
            tcoh_sum += float(valid_t.sum(dtype=np.float64))
            tcoh_n += valid_t.size

        _write_corrections(f, xs, ys, geo.epsg, gt, sec, scene, seed, (ref_i, sec_i),
                           (ref_row, ref_col), w, h, mantissa_rounding)
        _write_identification(f, frame, ref, sec, geo, xs, ys, nodata_count,
                              tcoh_sum / max(tcoh_n, 1), dates, ref_i, sec_i,
                              version, generation)
        _write_metadata(f)
    return path


def _write_corrections(f: h5netcdf.File, xs: np.ndarray, ys: np.ndarray, epsg: int,
                       gt: list[float], sec: datetime, scene: Scene, seed: int,
                       pair: tuple[int, int], ref_rc: tuple[int, int], w: int, h: int,
                       rounding: bool) -> None:
    g = f.create_group(DISP_S1.groups["corrections"])
    g.attrs["description"] = "Phase corrections which may be used to correct the displacement image"
    _write_grid_vars(g, xs, ys, epsg, gt, (sec - _EPOCH).total_seconds(), None,
                     "Time corresponding to beginning of secondary image")
    ref_i, sec_i = pair
    c = np.random.default_rng([seed, sec_i, 99]).normal(size=3)[2]
    up, vp = scene.point(*ref_rc)

    def pair_field(fn: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                   u: np.ndarray, v: np.ndarray) -> np.ndarray:
        # Secondary date minus reference date, referenced to the reference point.
        at_ref = float((fn(sec_i, up, vp) - fn(ref_i, up, vp))[0, 0])
        out: np.ndarray = fn(sec_i, u, v) - fn(ref_i, u, v) - at_ref
        return out

    layers = {layer.name: layer for layer in DISP_S1.corrections}

    def store(name: str, a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        layer = layers[name]
        out: np.ndarray = np.broadcast_to(a, shape).astype(layer.dtype)
        return round_mantissa(out, layer.keep_bits) \
            if rounding and layer.keep_bits is not None else out

    vars_ = {}
    for name, layer in layers.items():
        var = _raster(g, name, layer.dtype, layer.fill)
        var.attrs.update({"units": layer.units, "description": layer.description,
                          "long_name": layer.long_name, "grid_mapping": "spatial_ref"})
        vars_[name] = var
    for r0, r1 in _bands(h):
        u, v = scene.coords(r0, r1)
        shape = (r1 - r0, w)
        vars_["ionospheric_delay"][r0:r1, :] = store("ionospheric_delay",
                                                     pair_field(scene.iono, u, v), shape)
        vars_["solid_earth_tide"][r0:r1, :] = store("solid_earth_tide",
                                                    pair_field(scene.tide, u, v), shape)
        vars_["perpendicular_baseline"][r0:r1, :] = store("perpendicular_baseline",
                                                          50 * c + 3.0 * u - 2.0 * v, shape)
    rp = g.create_variable("reference_point", (), "i8", data=np.int64(0),
                           fillvalue=np.int64(0))
    tr = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = tr.transform(xs[ref_rc[1]], ys[ref_rc[0]])
    rp.attrs.update({"units": "unitless", "description": "Dummy dataset containing attributes "
                     "recording the spatial location where the reference phase was taken.",
                     "rows": np.array([ref_rc[0]], np.int64),
                     "cols": np.array([ref_rc[1]], np.int64),
                     "latitudes": np.array([lat]), "longitudes": np.array([lon])})


def _fmt(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S.%f")


def _write_identification(f: h5netcdf.File, frame: int, ref: datetime, sec: datetime,
                          geo: FrameGeo, xs: np.ndarray, ys: np.ndarray,
                          nodata_count: int, avg_tcoh: float, dates: list[datetime],
                          ref_i: int, sec_i: int, version: str, generation: datetime) -> None:
    g = f.create_group(DISP_S1.groups["identification"])._h5group
    tr = Transformer.from_crs(geo.epsg, 4326, always_xy=True)
    x_min, x_max = float(xs[0] - 15), float(xs[-1] + 15)
    y_min, y_max = float(ys[-1] - 15), float(ys[0] + 15)
    ring = [tr.transform(x, y) for x, y in
            ((x_min, y_min), (x_max, y_min), (x_max, y_max), (x_min, y_max), (x_min, y_min))]
    wkt = "MULTIPOLYGON (((" + ", ".join(f"{lo:.6f} {la:.6f}" for lo, la in ring) + ")))"
    end_offset = timedelta(seconds=24, microseconds=512000)
    files = ",".join(f"OPERA_L2_CSLC-S1_T{frame % 175:03d}-{frame * 3:06d}-IW{k}_"
                     f"{dates[i]:%Y%m%dT%H%M%S}Z" for i in (ref_i, sec_i) for k in (1, 2, 3))
    _strings(g, {
        "processing_facility": "NASA Jet Propulsion Laboratory on AWS",
        "frame_id": np.int64(frame),
        "product_version": version,
        "processing_start_datetime": generation.strftime("%Y-%m-%d %H:%M:%S"),
        "static_layers_data_access": "https://search.asf.alaska.edu/#/?dataset=OPERA-S1&"
                                     f"productTypes={DISP_S1.static_product_type}&"
                                     f"frame={frame}",
        "radar_band": "C",
        "reference_zero_doppler_start_time": _fmt(ref),
        "reference_zero_doppler_end_time": _fmt(ref + end_offset),
        "secondary_zero_doppler_start_time": _fmt(sec),
        "secondary_zero_doppler_end_time": _fmt(sec + end_offset),
        "bounding_polygon": wkt,
        "radar_wavelength": np.float64(WAVELENGTH),
        "reference_datetime": _fmt(ref),
        "secondary_datetime": _fmt(sec),
        "average_temporal_coherence": np.float32(avg_tcoh),
        "ceos_analysis_ready_data_product_type": "InSAR",
        "source_data_processing_facility": "NASA Jet Propulsion Laboratory on AWS",
        "source_data_imaging_geometry": "Geocoded",
        "source_data_satellite_names": "S1A",
        "source_data_earliest_acquisition": dates[ref_i].replace(microsecond=0,
                                                                  tzinfo=None).isoformat(),
        "source_data_latest_acquisition": dates[sec_i].replace(microsecond=0,
                                                                tzinfo=None).isoformat(),
        "ceos_number_of_input_granules": np.int64(6),
        "acquisition_mode": "IW",
        "radar_center_frequency": np.float64(5405000454.33435),
        "source_data_polarization": "VV",
        "source_data_file_list": files,
        "source_data_x_spacing": np.int64(5),
        "source_data_y_spacing": np.int64(10),
        "source_data_dem_name": "Copernicus GLO-30",
        "product_data_polarization": "VV",
        "product_sample_spacing": np.int64(30),
        "nodata_pixel_count": np.int64(nodata_count),
        "product_bounding_box": f"{x_min},{y_min},{x_max},{y_max}",
        "product_data_access": "https://search.asf.alaska.edu/#/?dataset=OPERA-S1&"
                               f"productTypes={DISP_S1.product_type}",
        "instrument_name": "C-SAR",
        "look_direction": "Right",
        "track_number": np.int64(frame % 175 + 1),
        "orbit_pass_direction": geo.orbit,
        "absolute_orbit_number": np.int64(12000 + sec_i * 175),
    })
    g["bounding_polygon"].attrs["units"] = "degrees"
    g["product_bounding_box"].attrs["units"] = "meters"
    g["radar_wavelength"].attrs["units"] = "meters"


def _write_metadata(f: h5netcdf.File) -> None:
    g = f.create_group(DISP_S1.groups["metadata"])._h5group
    from .. import __version__

    _strings(g, {
        "product_landing_page_doi": "https://doi.org/10.5067/SNWG/OPL3DISPS1-V1",
        "algorithm_theoretical_basis_document_doi": "https://doi.org/10.5067/SNWG/OPL3DISPS1-V1",
        "product_specification_document_id": "JPL D-108772",
        "disp_s1_software_version": "0.5.9",
        "dolphin_software_version": "0.39.0",
        "pge_runconfig": f"# synthetic granule written by opera-disp {__version__} sample\n"
                         "input_file_group: {}\n",
        "product_pixel_coordinate_convention": "pixel center",
        "ceos_product_measurement_projection": "line of sight",
        "ceos_gridding_convention": "Snap to grid",
        "ceos_phase_unwrapping_method": "snaphu",
        "platform_id": "S1A",
        "slant_range_mid_swath": np.float64(845000.0),
    })


def write_archive(
    directory: str | Path,
    *,
    frames: tuple[int, ...] = (DEFAULT_FRAME,),
    n_dates: int = 6,
    shape: tuple[int, int] = (1024, 1280),
    seed: int = 0,
    progress: bool | None = False,
    noise: bool = True,
    mantissa_rounding: bool = True,
    reference_every: int = REFERENCE_EVERY,
    skip: Collection[int] = (),
    step: tuple[int, float] | None = None,
) -> list[Path]:
    """Write a series of ``n_dates`` granules for each frame; return their paths.

    ``noise``, ``mantissa_rounding``, ``reference_every`` and ``step`` are passed to
    :func:`write_granule`; ``skip`` lists secondary indices (1-based, as ``index``) not
    written, e.g. a reference change's crossover product.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = write_archive(d, n_dates=4, shape=(8, 9), reference_every=2, skip=[2])
    ...     [DispProduct.from_name(p.name).secondary.day for p in paths]
    [17, 10, 22]
    """
    from ..progress import bar

    bad = sorted(set(skip) - set(range(1, n_dates + 1)))
    if bad:
        raise ValueError(f"skip {bad} is outside the products 1..{n_dates}")
    jobs = [(frame, i) for frame in frames for i in range(1, n_dates + 1) if i not in skip]
    out: list[Path] = []
    # None: a bar only when stderr is a terminal (tqdm's rule), never into a log or a pipe.
    for frame, i in bar(progress, iterable=jobs, desc="sample granules", unit="granule"):
        out.append(write_granule(directory, frame=frame, shape=shape, n_dates=n_dates, index=i,
                                 seed=seed, noise=noise, mantissa_rounding=mantissa_rounding,
                                 reference_every=reference_every, step=step))
    return out

