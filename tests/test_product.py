from datetime import UTC, datetime
from typing import get_args

import pytest

from opera_disp.errors import NotADispName
from opera_disp.product import LAYERS, MASK_LAYER, DispProduct, dedupe, parse_layers
from opera_disp.types import LayerName

NAME = "OPERA_L3_DISP-S1_IW_F40286_VV_20160701T005555Z_20160818T005558Z_v1.0_20250724T212204Z"


def test_parse_name_path_and_url() -> None:
    for text in (NAME, NAME + ".nc", f"/data/{NAME}.nc",
                 f"https://datapool.asf.alaska.edu/DISP/OPERA-S1/{NAME}.nc",
                 f"s3://asf-cumulus-prod-opera-products/OPERA_L3_DISP-S1_V1/{NAME}/{NAME}.nc"):
        p = DispProduct.from_name(text)
        assert p.frame == 40286
        assert p.reference == datetime(2016, 7, 1, 0, 55, 55, tzinfo=UTC)
        assert p.secondary == datetime(2016, 8, 18, 0, 55, 58, tzinfo=UTC)
        assert p.version == "1.0" and p.polarization == "VV"
        assert p.name == NAME and p.filename == NAME + ".nc"


@pytest.mark.parametrize("bad", ["foo.nc", NAME.replace("DISP-S1", "DISP-NI"),
                                 NAME.replace("_v1.0_", "_v1_"), NAME + ".h5"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(NotADispName):
        DispProduct.from_name(bad)


def test_dedupe_keeps_highest_version_then_newest_generation() -> None:
    a = DispProduct.from_name(NAME)
    b = DispProduct.from_name(NAME.replace("20250724T212204Z", "20260101T000000Z"))
    c = DispProduct.from_name(NAME.replace("_v1.0_", "_v1.1_").replace("20250724", "20240101"))
    other = DispProduct.from_name(NAME.replace("20160818T005558Z", "20160830T005558Z"))
    assert dedupe([a, b]) == [b]
    assert dedupe([a, b, c, other]) == [c, other]


def test_layer_table_matches_format() -> None:
    assert len(LAYERS) == 11
    assert LAYERS["displacement"].dtype == "float32"
    assert LAYERS["connected_component_labels"].fill == 65535
    assert LAYERS["shp_counts"].dtype == "int16" and LAYERS["shp_counts"].fill == 0
    assert LAYERS["timeseries_inversion_residuals"].units == "radians"
    assert parse_layers(" displacement ,temporal_coherence,displacement") == (
        "displacement", "temporal_coherence")
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        parse_layers("displacement,nope")


def test_layer_name_type_lists_exactly_the_layers() -> None:
    # The type restates the layer table: same names, same (creation) order.
    assert get_args(LayerName) == tuple(LAYERS)
    assert MASK_LAYER in get_args(LayerName)
    # parse_layers gives back the checked names themselves (LayerName values), in order.
    names = parse_layers(["recommended_mask", "shp_counts"])
    assert names == ("recommended_mask", "shp_counts")
    assert all(type(n) is str and n in get_args(LayerName) for n in names)
    assert parse_layers(",".join(reversed(list(LAYERS)))) == tuple(reversed(list(LAYERS)))
