"""A product's format facts as data: one :class:`ProductProfile` per product (DISP-S1 now).

Names, collection short names, known versions, the root layer table, the correction
layers, the group paths and the per-production dtype rules live here once; the name
parser, the CMR client, the HDF5 reader, the inspect report and the synthetic writer all
read them from :data:`DISP_S1`. A new product version (or DISP-NI) is one more entry, not
edits across the package.

Sources: the DISP-S1 format notes (``disp_s1_format.md`` in the project's shared
reference): §1 file name, §2.3 root layers, §3 groups.

Examples
--------
>>> DISP_S1.short_name, DISP_S1.layer_names[:2]
('OPERA_L3_DISP-S1_V1', ('displacement', 'short_wavelength_displacement'))
>>> DISP_S1.at("identification", "frame_id")
'identification/frame_id'
>>> from datetime import UTC, datetime
>>> DISP_S1.layer_dtype("displacement", datetime(2025, 7, 24, tzinfo=UTC))
'float32'
>>> DISP_S1.layer_dtype("displacement", datetime(2026, 2, 25, tzinfo=UTC))
'float64'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

#: How a layer's values behave: measurements (averaged when resampled) or classes/flags.
LayerKind = Literal["continuous", "categorical"]
#: The sub-groups of a granule the package reads or writes.
GroupName = Literal["identification", "corrections", "metadata"]


@dataclass(frozen=True)
class Layer:
    """One 2-D raster layer (of the root group, or of ``/corrections``).

    Attributes
    ----------
    name : str
        Dataset name in its group.
    dtype : str
        NumPy dtype string as stored by the first productions (see
        :meth:`ProductProfile.layer_dtype` for later ones).
    fill : float | int
        ``_FillValue`` (NaN for floats); also used as GeoTIFF nodata.
    units : str
        ``units`` attribute.
    keep_bits : int | None
        Mantissa bits kept by the writer (floats only).
    long_name : str
        ``long_name`` attribute.
    kind : {"continuous", "categorical"}
        Measurement or class/flag values.
    description : str
        ``description`` attribute (as the synthetic writer stores it).

    Examples
    --------
    >>> DISP_S1.layers[2].name, DISP_S1.layers[2].kind, DISP_S1.layers[2].is_float
    ('recommended_mask', 'categorical', False)
    """

    name: str
    dtype: str
    fill: float | int
    units: str
    keep_bits: int | None
    long_name: str
    kind: LayerKind = "continuous"
    description: str = ""

    @property
    def is_float(self) -> bool:
        """Whether the layer is floating point."""
        return np.dtype(self.dtype).kind == "f"


@dataclass(frozen=True)
class DtypeRule:
    """A layer stored with another dtype from some production time on.

    Attributes
    ----------
    since : datetime
        First production (generation) time, UTC, the rule holds for.
    layer : str
        Root layer name.
    dtype : str
        NumPy dtype string stored from then on.
    why : str
        Where the rule comes from.

    Examples
    --------
    >>> DISP_S1.dtype_rules[0].layer, DISP_S1.dtype_rules[0].dtype
    ('displacement', 'float64')
    """

    since: datetime
    layer: str
    dtype: str
    why: str = ""


@dataclass(frozen=True)
class ProductProfile:
    """Everything format-specific about one product, as data.

    Attributes
    ----------
    name : str
        Product name, e.g. ``"DISP-S1"``.
    short_name : str
        CMR collection short name of the granules.
    static_product_type : str
        ASF product type of the frame's static layers.
    product_type : str
        ASF product type of the granules.
    versions : tuple of str
        Product versions known (``v<X.Y>`` in names); the first is written by the
        synthetic generator.
    name_regex : re.Pattern
        Full match of a granule base name (``.nc`` optional), with groups ``frame``,
        ``pol``, ``ref``, ``sec``, ``version`` and ``gen``.
    name_format : str
        :meth:`str.format` template of a granule name (no extension), fields ``frame``,
        ``pol``, ``ref``, ``sec``, ``version``, ``gen`` (stamps as text).
    name_hint : str
        The naming rule in words, for error messages.
    stamp : str
        ``strftime`` format of the name's time stamps (UTC, ``Z`` after it).
    layers : tuple of Layer
        Root raster layers, in creation order.
    mask_layer : str
        The layer whose value 1 marks pixels to keep.
    corrections : tuple of Layer
        Raster layers of the corrections group.
    grid_variables : tuple of str
        Root variables every granule has (a file without them is not this product).
    groups : dict
        Path of each sub-group (``identification``, ``corrections``, ``metadata``).
    inspect_members : tuple of (group, member)
        Scalars the inspect report shows, in order.
    dtype_rules : tuple of DtypeRule
        Per-production dtype changes, oldest first.
    chunk : int
        Chunk edge of the raster layers (pixels).
    page_size : int
        HDF5 paged file-space page size (bytes).
    title : str
        The ``title`` global attribute.
    """

    name: str
    short_name: str
    static_product_type: str
    product_type: str
    versions: tuple[str, ...]
    name_regex: re.Pattern[str]
    name_format: str
    name_hint: str
    stamp: str
    layers: tuple[Layer, ...]
    mask_layer: str
    corrections: tuple[Layer, ...]
    grid_variables: tuple[str, ...]
    groups: dict[GroupName, str] = field(hash=False)
    inspect_members: tuple[tuple[GroupName, str], ...]
    dtype_rules: tuple[DtypeRule, ...]
    chunk: int
    page_size: int
    title: str

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Root layer names in creation order."""
        return tuple(layer.name for layer in self.layers)

    @property
    def layer_table(self) -> dict[str, Layer]:
        """Root layers by name (creation order)."""
        return {layer.name: layer for layer in self.layers}

    def at(self, group: GroupName, member: str) -> str:
        """HDF5 path of ``member`` in ``group``.

        Examples
        --------
        >>> DISP_S1.at("corrections", "solid_earth_tide")
        'corrections/solid_earth_tide'
        """
        return f"{self.groups[group]}/{member}"

    @property
    def inspect_paths(self) -> tuple[str, ...]:
        """HDF5 paths of :attr:`inspect_members`, in order."""
        return tuple(self.at(g, m) for g, m in self.inspect_members)

    def layer_dtype(self, name: str, production: datetime) -> str:
        """The dtype a root layer is stored with in a granule produced at ``production``.

        The newest rule whose ``since`` is at or before ``production`` wins; without one,
        the layer table's dtype. A file's own stored dtype always rules when reading: this
        is what a writer (the synthetic one) should store.

        Examples
        --------
        >>> DISP_S1.layer_dtype("temporal_coherence", datetime(2026, 1, 1, tzinfo=UTC))
        'float32'
        """
        dtype = self.layer_table[name].dtype
        for rule in self.dtype_rules:
            if rule.layer == name and rule.since <= production:
                dtype = rule.dtype
        return dtype

    def layers_of(self, production: datetime) -> tuple[Layer, ...]:
        """The root layers with the dtypes of a granule produced at ``production``.

        Examples
        --------
        >>> [x.dtype for x in DISP_S1.layers_of(datetime(2026, 1, 1, tzinfo=UTC))][:2]
        ['float64', 'float32']
        """
        return tuple(
            layer if (d := self.layer_dtype(layer.name, production)) == layer.dtype
            else Layer(layer.name, d, layer.fill, layer.units, layer.keep_bits,
                       layer.long_name, layer.kind, layer.description)
            for layer in self.layers)


_NAN = float("nan")

DISP_S1 = ProductProfile(
    name="DISP-S1",
    short_name="OPERA_L3_DISP-S1_V1",
    static_product_type="DISP-S1-STATIC",
    product_type="DISP-S1",
    versions=("1.0", "1.1"),
    name_regex=re.compile(
        r"^OPERA_L3_DISP-S1_IW_F(?P<frame>\d{5})_(?P<pol>VV|HH)_"
        r"(?P<ref>\d{8}T\d{6})Z_(?P<sec>\d{8}T\d{6})Z_v(?P<version>\d+\.\d+)_"
        r"(?P<gen>\d{8}T\d{6})Z(?:\.nc)?$"),
    name_format="OPERA_L3_DISP-S1_IW_F{frame:05d}_{pol}_{ref}Z_{sec}Z_v{version}_{gen}Z",
    name_hint="OPERA_L3_DISP-S1_IW_F<frame>_<pol>_<ref>Z_<sec>Z_v<X.Y>_<gen>Z.nc",
    stamp="%Y%m%dT%H%M%S",
    layers=(
        Layer("displacement", "float32", _NAN, "meters", 12, "Line-of-sight displacement",
              "continuous",
              "Displacement along the radar Line-of-Sight (LOS) direction. Positive values "
              "indicate apparent motion towards the platform."),
        Layer("short_wavelength_displacement", "float32", _NAN, "meters", 12,
              "Short wavelength displacement", "continuous",
              "Displacement in Line-of-Sight (LOS) with long-wavelength signals removed. "
              "Positive values indicate apparent motion towards the platform."),
        Layer("recommended_mask", "uint8", 255, "unitless", None, "Recommended Mask",
              "categorical",
              "Suggested mask to remove low quality pixels, where 0 indicates a bad pixel, 1 "
              "is a good pixel. Pixels are set to 0 for three reasons: 1) the pixel is marked "
              "as water in /water_mask, 2) the pixel is 0 in /connected_component_labels, or "
              "3) the pixel has low /temporal_coherence and low /phase_similarity, where "
              "'low' is below the threshold listed in this dataset's attributes."),
        Layer("connected_component_labels", "uint16", 65535, "unitless", None,
              "Connected Component Labels", "categorical",
              "Connected component labels of the unwrapped phase"),
        Layer("temporal_coherence", "float32", _NAN, "unitless", 8, "Temporal Coherence",
              "continuous", "Temporal coherence of phase inversion"),
        # The format notes quote "Sliding window estimate of multi-looked phase noise";
        # this text is what the synthetic archive has always stored (its bytes are kept).
        Layer("estimated_phase_quality", "float32", _NAN, "unitless", 8,
              "Estimated phase quality", "continuous",
              "Estimate of interferometric phase quality"),
        Layer("persistent_scatterer_mask", "uint8", 255, "unitless", None,
              "Persistent Scatterer Mask", "categorical",
              "Mask of persistent scatterers downsampled to the multilooked output grid"),
        Layer("shp_counts", "int16", 0, "unitless", None,
              "Statistically Homogeneous Pixels Counts", "continuous",
              "Number of statistically homogeneous pixels (SHPs) used at each output pixel "
              "during multilooking"),
        Layer("water_mask", "uint8", 255, "unitless", None, "Water Mask", "categorical",
              "Binary mask created to ignore water during processing."),
        Layer("phase_similarity", "float32", _NAN, "unitless", 8, "Phase Similarity",
              "continuous",
              "Median cosine similarity of wrapped phase in each pixel's neighborhood."),
        Layer("timeseries_inversion_residuals", "float32", _NAN, "radians", 7,
              "Timeseries inversion residuals", "continuous",
              "Sum of residuals of the timeseries inversion for this secondary date."),
    ),
    mask_layer="recommended_mask",
    corrections=(
        Layer("ionospheric_delay", "float32", _NAN, "meters", 10, "Ionospheric Delay",
              "continuous",
              "Apparent displacement from excess path delay difference due to signal "
              "propagation through the ionosphere. Subtract from /displacement to apply as a "
              "correction."),
        Layer("solid_earth_tide", "float32", _NAN, "meters", 10, "Solid Earth Tide",
              "continuous",
              "Surface displacement due to Solid Earth tide difference between the reference "
              "and secondary acquisition times, projected onto the radar line of sight. "
              "Subtract from /displacement to apply as a correction."),
        Layer("perpendicular_baseline", "float32", _NAN, "meters", 10,
              "Perpendicular Baseline", "continuous",
              "Perpendicular baseline between reference and secondary acquisitions. May be "
              "used to correct for DEM error."),
    ),
    grid_variables=("x", "y", "spatial_ref", "time"),
    groups={"identification": "identification", "corrections": "corrections",
            "metadata": "metadata"},
    inspect_members=(
        ("identification", "orbit_pass_direction"), ("identification", "track_number"),
        ("identification", "product_version"), ("identification", "frame_id"),
        ("metadata", "disp_s1_software_version"), ("metadata", "dolphin_software_version"),
        ("identification", "source_data_satellite_names"),
    ),
    dtype_rules=(
        # The format notes' layer table (writer emulation, h5dump of an early granule)
        # has float32; the MAAP tutorial's xarray view of a newer granule shows
        # displacement as float64 while the other layers stay float32. The first
        # production with float64 is not in the notes: 2025-12-02 is the date of the
        # late-2025 algorithm parameters (algorithm_parameters_historical_20251202), the
        # one production change the notes date in late 2025. UNCONFIRMED against a file.
        DtypeRule(datetime(2025, 12, 2, tzinfo=UTC), "displacement", "float64",
                  "late-2025 productions store displacement as float64"),
    ),
    chunk=256,
    page_size=4 * 1024 * 1024,
    title="OPERA_L3_DISP-S1 Product",
)
