from types import SimpleNamespace

import numpy as np

from napari_caiman.engine.pipeline import NanFilled, motion_border


def test_nan_filled_zeroes_a_fixed_border_and_nans():
    movie = np.ones((5, 6, 20, 30), np.float32)
    movie[2, 3, 10, 10] = np.nan
    view = NanFilled(movie, border=(1, 2, 3))
    frames = view[0:5]
    assert frames.shape == movie.shape and frames.dtype == np.float32
    assert frames[2, 3, 10, 10] == 0
    inner = frames[:, 1:-1, 2:-2, 3:-3]
    assert np.all(inner[~np.isnan(movie[:, 1:-1, 2:-2, 3:-3])] == 1)
    assert (
        frames[:, 0].sum() == 0 and frames[:, :, :2].sum() == 0 and frames[:, :, :, -3:].sum() == 0
    )
    one = view[4]
    assert one.shape == (6, 20, 30) and one[0].sum() == 0 and one[1:-1, 2:-2, 3:-3].min() == 1
    np.testing.assert_array_equal(view[1:3, 2], frames[1:3, 2])
    assert np.isnan(movie[2, 3, 10, 10])  # input untouched


def test_motion_border_covers_rigid_and_patch_shifts():
    rig = np.array([[0.5, -2.2], [1.0, 0.1]])  # CaImAn order (y, x)
    assert motion_border(SimpleNamespace(shifts_rig=rig, shifts_els=None)) == (1, 3)
    els = np.zeros((2, 4, 2))
    els[1, 2] = (-3.5, 0.0)
    assert motion_border(SimpleNamespace(shifts_rig=rig, shifts_els=els)) == (4, 3)
    rig3 = np.array([[1.2, 0.0, 0.4]])  # (y, x, z) -> array order (z, y, x)
    assert motion_border(SimpleNamespace(shifts_rig=rig3, shifts_els=None)) == (1, 2, 0)


def test_motion_step_makes_the_summary_images_without_reading_the_corrected_movie(
    tmp_path, monkeypatch
):
    """The motion step accumulates the summary images from the corrected frames as
    it writes them (at recording scale the corrected movie is larger than the page
    cache, so a second pass would read it from disk): the images equal those of a
    pass over the corrected file, and that pass is not made."""
    from napari_caiman.engine import pipeline, summary
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.progress import run
    from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

    calls = []
    real = summary.iter_summary_images

    def counting(movie, **kw):
        calls.append(movie.shape)
        return (yield from real(movie, **kw))

    monkeypatch.setattr(summary, "iter_summary_images", counting)
    cases = [
        (
            make_movie_2d((120, 48, 64), n_neurons=8, rigid_motion=3, seed=2).movie,
            {"strides": (24, 24), "overlaps": (12, 12)},
        ),
        (
            make_movie_3d((40, 6, 32, 40), n_neurons=6, rigid_motion=1.5, seed=3).movie,
            {"max_shifts": (3, 3, 1), "strides": (16, 16, 4), "overlaps": (8, 8, 2)},
        ),
    ]
    for i, (movie, motion) in enumerate(cases):
        params = CaimanParams.from_dict(
            {"motion": {"pw_rigid": True, "border_nan": True, **motion}}
        )
        out = tmp_path / f"corrected{i}.npy"
        step = run(pipeline.iter_motion_step(movie, params, out=str(out)))
        assert calls == []
        corrected = np.load(out, mmap_mode="r")
        assert np.isnan(corrected).any()  # NaN borders, ignored by both
        ref = summary.summary_images(corrected)
        calls.clear()
        for name in ("mean", "max", "std", "corr"):
            np.testing.assert_allclose(
                getattr(step.summary, name), getattr(ref, name), rtol=1e-5, atol=1e-5
            )
        assert step.timings["summary"] > 0 and step.timings["motion"] > 0


def test_motion_writes_the_patches_tile_copy_so_cnmf_does_not_read_the_movie_for_it(
    tmp_path, monkeypatch
):
    """Motion then CNMF on a movie larger than the page cache: the motion step writes
    the time-binned tile-major copy the patches read as it writes the corrected
    frames (before their motion border is known), CNMF takes it instead of reading
    the corrected movie once more to build it, the components are those of a run
    that builds it, and no copy is left behind, also after a cancel."""
    from napari_caiman.app.session import Session
    from napari_caiman.engine.cnmf import data as cnmf_data
    from napari_caiman.engine.cnmf import patches, tiles
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.progress import run
    from napari_caiman.engine.synthetic import make_movie_2d

    monkeypatch.setattr(tiles, "POLICY", "always")  # as if larger than the page cache
    monkeypatch.setattr(patches, "PATCH_MAX_FRAMES", 60)  # 150 frames: 3 a sample
    built = []
    real = cnmf_data.MovieData.iter_store

    def counting(self, tbin=1, ranges=None):
        if self.stored(tbin, ranges) is None:
            built.append(tbin)
        return (yield from real(self, tbin, ranges))

    monkeypatch.setattr(cnmf_data.MovieData, "iter_store", counting)
    movie = make_movie_2d((150, 64, 96), n_neurons=10, rigid_motion=2, seed=2).movie
    params = CaimanParams.from_dict(
        {
            "motion": {"pw_rigid": False, "border_nan": True, "max_shifts": (4, 4)},
            "K": 4,
            "gSig": (3, 3),
            "rf": 12,
            "stride": 6,
            "n_processes": 1,
            "memory_limit": "8MB",  # the movie (3.7 MB) is streamed from its file
        }
    )

    def tile_files():
        return [p.name for p in tmp_path.iterdir() if p.name.startswith("napari-caiman-tiles-")]

    got = {}
    for for_cnmf in (True, False):
        s = Session(movie, params)
        run(s.iter_motion(out=tmp_path / f"corrected{for_cnmf}.npy", for_cnmf=for_cnmf))
        assert len(tile_files()) == (1 if for_cnmf else 0)
        assert max(s.cnmf_movie().border) > 0  # a border the copy learns after the fact
        built.clear()
        step = run(s.iter_cnmf())
        est = step.estimates
        assert est.info.get("tiles_from_motion", False) is for_cnmf
        assert built == ([1] if for_cnmf else [1, 3])  # the noise's copy; the patches' one
        assert tile_files() == []
        got[for_cnmf] = est
        if for_cnmf:
            assert s.timings["motion tile copy"] > 0
    a, b = got[True], got[False]
    assert a.A.shape[1] == b.A.shape[1] >= 6
    np.testing.assert_allclose(a.A.toarray(), b.A.toarray(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.C, b.C, rtol=1e-4, atol=1e-4 * float(np.abs(b.C).max()))

    s = Session(movie, params)  # cancelled mid-motion: the copy goes with the movie
    gen = s.iter_motion(out=tmp_path / "cancelled.npy", for_cnmf=True)
    for p in gen:
        if p.stage == "registering" and p.done > 0:
            break
    assert len(tile_files()) == 1
    gen.close()
    assert tile_files() == []
