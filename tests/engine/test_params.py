import json

import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import DEFAULTS, CaimanParams, parse_kwargs


def test_defaults_match_caiman_names_and_values():
    p = CaimanParams.defaults()
    m = p.group("motion")
    assert m["max_shifts"] == (6, 6)
    assert m["strides"] == (96, 96) and m["overlaps"] == (32, 32)
    assert m["max_deviation_rigid"] == 3 and m["niter_rig"] == 1 and m["upsample_factor_grid"] == 4
    assert m["border_nan"] is True and m["pw_rigid"] is False and m["gSig_filt"] is None
    assert p["gSig"] == (5, 5) and p["K"] == 30 and p["merge_thr"] == 0.8
    assert p.changed() == {}


def test_flat_caiman_params_dict_is_accepted_unchanged():
    # the params_dict of CaImAn's demo_pipeline notebook
    params_dict = {
        "fnames": ["Sue_2x_3000_40_-46.tif"],
        "fr": 30,
        "decay_time": 0.4,
        "dxy": (2.0, 2.0),
        "max_shifts": (5, 5),
        "strides": (48, 48),
        "overlaps": (24, 24),
        "max_deviation_rigid": 3,
        "pw_rigid": True,
        "p": 1,
        "nb": 2,
        "rf": 15,
        "K": 4,
        "gSig": (4, 4),
        "stride": 6,
        "method_init": "greedy_roi",
        "rolling_sum": True,
        "only_init": True,
        "ssub": 1,
        "tsub": 1,
        "merge_thr": 0.85,
        "min_SNR": 2.0,
        "rval_thr": 0.85,
        "use_cnn": True,
        "min_cnn_thr": 0.99,
        "cnn_lowest": 0.1,
    }
    p = CaimanParams.from_dict(params_dict)
    assert p.group("motion")["strides"] == (48, 48)
    assert (
        p.group("init")["nb"] == 2
        and p.group("spatial")["nb"] == 2
        and p.group("temporal")["nb"] == 2
    )
    assert p.group("quality")["min_SNR"] == 2.0


def test_grouped_dict_and_json_roundtrip(tmp_path):
    p = CaimanParams.from_dict(
        {"motion": {"max_shifts": [4, 4], "pw_rigid": True}, "init": {"K": 7}}
    )
    assert p["max_shifts"] == (4, 4) and p["K"] == 7
    f = tmp_path / "p.json"
    f.write_text(p.to_json(only_changed=True))
    assert CaimanParams.from_json(str(f)) == p


def test_unknown_name_lists_close_matches():
    with pytest.raises(InputError) as e:
        CaimanParams.from_dict({"max_shift": (4, 4)})
    assert e.value.argument == "max_shift"
    assert "max_shifts" in str(e.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_shifts": (-1, 2)},
        {"strides": (0, 48)},
        {"niter_rig": 0},
        {"border_nan": "yes"},
        {"merge_thr": 1.5},
        {"K": 0},
        {"p": 3},
        {"fr": -2},
        {"pw_rigid": "true"},
        {"gSig": None},
        {"upsample_factor_grid": 2.5},
        {"max_shifts": (1, 2, 3, 4)},
    ],
)
def test_impossible_values_are_rejected_with_the_name(bad):
    with pytest.raises(InputError) as e:
        CaimanParams.from_dict(bad)
    assert e.value.argument == next(iter(bad))


def test_missing_and_bad_json_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        CaimanParams.from_json(str(tmp_path / "nope.json"))
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        CaimanParams.from_json(str(f))
    f.write_text(json.dumps([1, 2]))
    with pytest.raises(InputError):
        CaimanParams.from_json(str(f))


def test_parse_kwargs_is_safe_and_forgiving():
    assert parse_kwargs("") == {}
    assert parse_kwargs(None) == {}
    assert parse_kwargs("{'ssub': 2, 'tsub': 2}") == {"ssub": 2, "tsub": 2}
    assert parse_kwargs("'niter_rig': 2") == {"niter_rig": 2}
    assert parse_kwargs('{"border_nan": false, "gSig_filt": null}') == {
        "border_nan": False,
        "gSig_filt": None,
    }
    for text in ("__import__('os').system('true')", "{'a': open('x')}", "[1, 2]", "{1: 2}"):
        with pytest.raises(InputError) as e:
            parse_kwargs(text)
        assert e.value.argument == "kwargs"


def test_every_group_is_reachable():
    p = CaimanParams.defaults()
    for g in DEFAULTS:
        assert set(p.group(g)) == set(DEFAULTS[g])
    with pytest.raises(InputError):
        p.group("nonsense")


def test_z_defaults_fit_few_planes_and_errors_use_one_axis_order():
    import numpy as np

    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.defaults import Z_DEFAULTS, z_default, z_fits
    from napari_caiman.engine.errors import InputError
    from napari_caiman.engine.params import CaimanParams

    for name in Z_DEFAULTS:
        for Z in range(2, 8):
            assert z_fits(name, z_default(name, Z), Z), (name, Z)
    assert z_default("gSig", 2) == 0.5 and z_default("gSig", 6) == 2
    assert z_default("max_shifts", 2) == 0 and z_default("max_shifts", 8) == 2
    movie = np.random.default_rng(0).random((20, 2, 30, 30), np.float32)
    with pytest.raises(InputError) as info:
        cnmf(movie, CaimanParams.from_dict({"gSig": (4, 4, 2), "K": 2}))
    assert "(30, 30, 2) (rows, cols, planes)" in str(info.value)
