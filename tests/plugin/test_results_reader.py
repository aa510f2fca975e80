import h5py
import numpy as np
import pytest

from napari_caiman.io.results_file import load_results, save_results
from napari_caiman.plugin.readers import get_reader
from napari_caiman.plugin.results_reader import get_results_reader, read_results


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name, dims, K",
    [
        ("neurofinder_crop_caiman.hdf5", (256, 256), 303),
        ("synthetic3d_caiman.hdf5", (12, 96, 96), 46),
    ],
)
def test_caiman_files_open_as_cnmf_layers(shared_data, name, dims, K):
    path = shared_data / "caiman_results" / name
    assert get_reader(str(path)) is None  # not a movie
    reader = get_results_reader(str(path))
    assert reader is not None
    layers = {
        meta["name"].split(" ")[-1]: (data, meta, kind) for data, meta, kind in reader(str(path))
    }
    assert set(layers) >= {"correlation", "footprints", "contours", "denoised"}
    labels = layers["footprints"][0]
    assert labels.shape == dims and labels.max() <= K and len(np.unique(labels)) > 0.8 * K
    outlines, meta, kind = layers["contours"]
    assert kind == "image" and meta["rgb"] and outlines.shape[-1] == 4
    assert len(np.unique(meta["metadata"]["napari_caiman"]["outlines"].component)) == K
    res = meta["metadata"]["napari_caiman_results"]
    assert res.estimates.A.shape[1] == K and len(res.accepted()) == len(
        res.estimates.idx_components
    )


def test_our_results_file_roundtrips_into_layers(tmp_path):
    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.results import Results
    from napari_caiman.engine.summary import summary_images
    from napari_caiman.engine.synthetic import make_movie_2d

    syn = make_movie_2d((200, 48, 48), n_neurons=6, seed=4)
    params = CaimanParams.from_dict({"K": 8, "gSig": (4, 4)})
    est = cnmf(syn.movie, params)
    s = summary_images(syn.movie)
    r = Results(
        params=params,
        dims=(48, 48),
        estimates=est,
        summary={k: getattr(s, k) for k in ("mean", "max", "std", "corr")},
        motion={
            "shifts_rig": np.zeros((200, 2), np.float32),
            "shifts_els": np.zeros((200, 4, 2), np.float32),
        },
    )
    path = save_results(tmp_path / "ours.hdf5", r)
    assert get_reader(str(path)) is None  # 3-D shifts_els must not make it look like a movie
    layers = read_results(str(path))
    by_kind = {kind: (data, meta) for data, meta, kind in layers}
    corr = next(data for data, meta, _ in layers if meta["name"] == "ours correlation")
    np.testing.assert_allclose(corr, s.corr, rtol=1e-6)
    assert by_kind["labels"][0].shape == (48, 48)
    contours = next(meta for _, meta, _ in layers if meta["name"] == "ours contours")
    loaded = contours["metadata"]["napari_caiman_results"]
    assert loaded.estimates.A.shape == est.A.shape
    assert load_results(path).estimates.n_components == est.n_components


def test_foreign_and_broken_files_are_declined(tmp_path):
    movie_h5 = tmp_path / "movie.h5"
    with h5py.File(movie_h5, "w") as f:
        f["mov"] = np.zeros((5, 8, 8), np.float32)
    assert get_results_reader(str(movie_h5)) is None
    assert get_reader(str(movie_h5)) is not None
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"\x00" * 100)
    assert get_results_reader(str(junk)) is None
    assert get_results_reader([str(junk), str(movie_h5)]) is None
