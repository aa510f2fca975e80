"""The parameter schema (engine/schema.py) and the resolver (engine/resolve.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tifffile

from napari_caiman.engine import schema
from napari_caiman.engine.caiman_defaults import ALL_GROUPS
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.resolve import for_movie, resolve, thresholds
from napari_caiman.engine.synthetic import make_movie_2d


def test_each_group_is_a_frozen_dataclass_of_caiman_defaults():
    seen = set()
    for cls in schema.GROUPS:
        inst = cls()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(inst, dataclasses.fields(cls)[0].name, 1)
        for f in dataclasses.fields(cls):
            s = f.metadata["spec"]
            assert s.group == cls.GROUP and s.name == f.name
            assert getattr(inst, f.name) == ALL_GROUPS[cls.GROUP][f.name] == s.default
            assert f.name not in seen  # one group owns each name
            seen.add(f.name)
            if s.form is not None:  # the form's range lies within the check's bounds
                lo, hi, _ = s.form
                assert lo <= hi
                if s.minimum is not None and not s.none_ok and not (s.auto and lo == 0):
                    assert lo >= s.minimum, s.name
                if s.maximum is not None:
                    assert hi <= s.maximum, s.name
    assert {"max_shifts", "gSig", "K", "rf", "min_SNR", "min_size", "max_size", "backend"} <= seen
    assert [g.GROUP for g in schema.GROUPS] == [
        "data",
        "motion",
        "init",
        "spatial",
        "temporal",
        "merging",
        "patch",
        "quality",
        "napari_caiman",
    ]


def test_spec_axes_volume_default_and_automatic_rule():
    gsig, gsiz, ms = (schema.SPEC_BY_NAME[n] for n in ("gSig", "gSiz", "max_shifts"))
    assert gsig.per_axis and gsig.default_3d == (5, 5, 2) and ms.default_3d == (6, 6, 2)
    assert gsiz.auto == "2 * gSig + 1" and "None = 2 * gSig + 1" in gsiz.range_text()
    assert schema.SPEC_BY_NAME["K"].range_text() == "integer >= 1"
    assert schema.Motion.from_params({"max_shifts": (4, 4)}).max_shifts == (4, 4)
    with pytest.raises(InputError) as e:
        schema.Motion.from_params({"max_shifts": (-1, 4)})
    assert e.value.argument == "max_shifts" and "(rows, cols[, planes])" in e.value.message
    for name, bad in (
        ("min_size", -1),
        ("p", True),
        ("seed_anatomy", "yes"),
        ("memory_limit", "lots"),
    ):
        with pytest.raises(InputError) as e:
            CaimanParams.from_dict({name: bad})
        assert e.value.argument == name


def test_flat_caiman_dicts_and_json_files_load_unchanged(tmp_path):
    flat = {
        "fr": 15,
        "gSig": [4, 4],
        "max_shifts": [5, 5],
        "rf": 12,
        "stride": 6,
        "K": 8,
        "min_SNR": 3,
    }
    grouped = {
        "data": {"fr": 15},
        "init": {"gSig": [4, 4], "K": 8},
        "motion": {"max_shifts": [5, 5]},
        "patch": {"rf": 12, "stride": 6},
        "quality": {"min_SNR": 3},
    }
    for i, values in enumerate((flat, grouped)):
        path = tmp_path / f"p{i}.json"
        path.write_text(json.dumps(values))
        p = CaimanParams.from_json(str(path))
        assert p["gSig"] == (4, 4) and p["max_shifts"] == (5, 5) and p["rf"] == 12 and p["fr"] == 15
        r = resolve(p, (50, 100, 80))
        assert r.cnmf.rf == (12, 12) and r.cnmf.stride == (6, 6) and r.cnmf.gSiz == (9, 9)
        assert r.motion.max_shifts == (5, 5) and r.quality["min_SNR"] == 3


def test_resolve_names_the_field_in_caiman_order():
    shape = (20, 4, 30, 50)  # T, Z, Y, X: CaImAn's dims (rows, cols, planes) = (30, 50, 4)
    with pytest.raises(InputError) as e:
        resolve({"max_shifts": (16, 4, 1)}, shape)
    assert e.value.argument == "max_shifts"
    assert "(30, 50, 4)" in e.value.message and "(4, 30, 50)" not in e.value.message
    with pytest.raises(InputError) as e:
        resolve({"gSig": (3, 3, 2)}, shape)  # 2 * 2 planes >= 4 planes
    assert e.value.argument == "gSig" and "(30, 50, 4)" in e.value.message
    with pytest.raises(InputError) as e:
        resolve({"gSig": (4, 4), "rf": (3, 3)}, (20, 64, 64))
    assert e.value.argument == "rf"
    with pytest.raises(InputError) as e:
        resolve(
            {"pw_rigid": True, "strides": (40, 40), "overlaps": (20, 20)}, (20, 30, 50), ["motion"]
        )
    assert e.value.argument == "strides" and "(30, 50)" in e.value.message
    # only the steps asked for are resolved
    assert resolve({"max_shifts": (16, 16)}, (20, 30, 50), ["cnmf"]).motion is None


def test_for_movie_gives_volumes_the_docks_planes_defaults():
    p = for_movie(CaimanParams.defaults(), (10, 8, 64, 64))
    assert p["max_shifts"] == (6, 6, 2) and p["gSig"] == (5, 5, 2) and p["strides"] == (96, 96, 4)
    assert p["is3D"] is True
    few = for_movie(
        {"gSig": (3, 3), "rf": (10, 10), "stride": (4, 4), "gSiz": (7, 7)}, (10, 2, 64, 64)
    )
    assert few["max_shifts"] == (6, 6, 0) and few["gSig"] == (
        3,
        3,
        0.5,
    )  # 2 planes: no z shift, half a plane
    assert few["rf"] == (10, 10, 2) and few["stride"] == (4, 4, 1) and few["gSiz"] == (7, 7, 2)
    given = CaimanParams.from_dict({"gSig": (3, 3, 1), "max_shifts": 3})
    assert for_movie(given, (10, 8, 64, 64))["gSig"] == (3, 3, 1)  # 3 values and scalars as given
    assert for_movie(given, (10, 8, 64, 64))["max_shifts"] == 3
    assert for_movie(given, (10, 64, 64)) is given  # 2D: nothing to fill


def test_thresholds_are_every_keyword_of_apply_thresholds_from_the_schema():
    import inspect

    from napari_caiman.engine.evaluation import apply_thresholds
    from napari_caiman.engine.resolve import THRESHOLD_NAMES

    keywords = [
        n
        for n, a in inspect.signature(apply_thresholds).parameters.items()
        if a.kind == a.KEYWORD_ONLY
    ]
    assert sorted(THRESHOLD_NAMES) == sorted(keywords)  # one list, and it is the function's
    p = CaimanParams.from_dict({"min_SNR": 3.5, "min_solidity": 0.2})
    th = thresholds(p)
    assert list(th) == list(THRESHOLD_NAMES)
    assert th["min_SNR"] == 3.5 and th["min_solidity"] == 0.2 and th["use_cnn"] is False
    # the others are the defaults
    d = CaimanParams.defaults()
    assert all(
        th[k] == d[k]
        for k in THRESHOLD_NAMES
        if k not in ("min_SNR", "min_solidity", "use_cnn", "min_size", "max_size")
    )
    assert th["min_size"] is None and th["max_size"] is None
    assert thresholds(p, {"evaluation": {"min_size": 12, "max_size": 0}})["min_size"] == 12
    assert (
        thresholds(p.copy().update({"min_size": 5}), {"evaluation": {"min_size": 12}})["min_size"]
        == 5
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from napari_caiman.app.api import run_pipeline

    folder = tmp_path_factory.mktemp("sizes")
    m = make_movie_2d((200, 64, 64), n_neurons=10, snr=3.0, seed=3, return_flow=False)
    tifffile.imwrite(folder / "m.tif", m.movie.astype(np.float32))
    params = CaimanParams.from_dict({"gSig": (3, 3), "K": 14})
    res = run_pipeline(
        [str(folder / "m.tif")], steps=("cnmf", "evaluate"), output=folder / "r.hdf5", params=params
    )
    return folder, res


def test_size_limits_are_parameters_and_exports_follow_them(evaluated, tmp_path, capsys):
    from napari_caiman.app.cli import main
    from napari_caiman.io.results_file import load_results, save_results

    folder, res = evaluated
    plain = res.accepted()
    size = np.asarray(res.metrics.size)
    assert len(plain) >= 3
    limit = float(np.median(size[plain]))
    expected = plain[size[plain] >= limit]
    assert 0 < len(expected) < len(plain)
    # a file of the Evaluation dock: the limit in its provenance, not in the parameters
    dock = load_results(folder / "r.hdf5")
    dock.provenance = {**dock.provenance, "evaluation": {"min_size": limit, "max_size": 0}}
    save_results(tmp_path / "dock.hdf5", dock)
    again = load_results(tmp_path / "dock.hdf5")
    assert np.array_equal(again.accepted(), expected)
    csv = tmp_path / "t.csv"
    assert main(["export", str(tmp_path / "dock.hdf5"), "--csv", str(csv)]) == 0
    assert len(csv.read_text().splitlines()[0].split(",")) == len(expected) + 1
    # the same limit as a parameter of a headless run
    assert (
        main(
            [
                "run",
                str(folder / "m.tif"),
                "--steps",
                "cnmf,evaluate",
                "-o",
                str(tmp_path / "cli.hdf5"),
                "--set",
                "gSig=(3, 3)",
                "--set",
                "K=14",
                "--set",
                f"min_size={limit}",
                "-q",
            ]
        )
        == 0
    )
    cli = load_results(tmp_path / "cli.hdf5")
    assert cli.params["min_size"] == limit
    assert np.array_equal(np.sort(cli.estimates.idx_components), expected)
    assert np.array_equal(cli.accepted(), expected)
    capsys.readouterr()
