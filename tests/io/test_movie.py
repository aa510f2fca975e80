"""Opening and saving movies: formats, laziness, multi-file, errors, reader."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile

from napari_caiman.engine.errors import InputError
from napari_caiman.io import movie_files, open_movie, save_movie
from napari_caiman.plugin.readers import get_reader

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def mov():
    return (np.random.default_rng(0).random((9, 12, 10)) * 4000).astype(np.uint16)


@pytest.mark.parametrize("ext", [".tif", ".tiff", ".npy", ".h5", ".hdf5"])
def test_round_trip(tmp_path, mov, ext):
    p = save_movie(tmp_path / f"m{ext}", mov, chunk_size=4)
    assert p == tmp_path / f"m{ext}"
    assert [q.name for q in tmp_path.iterdir()] == [p.name]  # no temp file left
    m = open_movie(p)
    assert m.shape == mov.shape and m.dtype == mov.dtype
    np.testing.assert_array_equal(np.asarray(m), mov)
    if ext in (".tif", ".tiff", ".npy"):
        assert isinstance(m, np.memmap)
    else:
        assert isinstance(m, da.Array)


def test_round_trip_4d_float(tmp_path):
    m4 = np.random.default_rng(1).random((5, 3, 8, 7)).astype(np.float32)
    for ext in (".tif", ".npy", ".h5"):
        back = open_movie(save_movie(tmp_path / f"v{ext}", m4, chunk_size=2))
        np.testing.assert_array_equal(np.asarray(back), m4)


def test_hdf5_dataset_choice(tmp_path, mov):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f["small"] = mov[:2]
        f["group/images"] = mov
        f["vector"] = np.arange(5)
    np.testing.assert_array_equal(np.asarray(open_movie(p)), mov)  # preferred name 'images'
    np.testing.assert_array_equal(np.asarray(open_movie(p, var_name_hdf5="small")), mov[:2])
    with pytest.raises(InputError, match="nothere"):
        open_movie(p, var_name_hdf5="nothere")
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["estimates/C"] = np.zeros((3, 10))
    with pytest.raises(InputError, match="no movie"):
        open_movie(tmp_path / "r.h5")


def test_compressed_tiff_is_lazy(tmp_path, monkeypatch):
    import napari_caiman.io.movie as mv

    monkeypatch.setattr(mv, "_SMALL_BYTES", 0)
    m = np.random.default_rng(2).integers(0, 1000, (20, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", m, compression="zlib")
    lazy = open_movie(tmp_path / "c.tif")
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy[3:11].compute(), m[3:11])
    np.testing.assert_array_equal(lazy.compute(), m)


def test_imagej_hyperstack_axes(tmp_path):
    m = np.random.default_rng(3).integers(0, 200, (6, 3, 1, 10, 12), dtype=np.uint8)  # T Z C Y X
    tifffile.imwrite(tmp_path / "h.tif", m, imagej=True, metadata={"axes": "TZCYX"})
    out = open_movie(tmp_path / "h.tif")
    assert out.shape == (6, 3, 10, 12)
    np.testing.assert_array_equal(np.asarray(out), m[:, :, 0])
    two = np.zeros((4, 2, 10, 12), np.uint8)
    tifffile.imwrite(tmp_path / "c2.tif", two, imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(InputError, match="channels"):
        open_movie(tmp_path / "c2.tif")


def test_folder_natural_sort(tmp_path, mov):
    d = tmp_path / "parts"
    d.mkdir()
    names = ["file_10.tif", "file_2.tif", "file_1.tif"]
    chunks = {"file_1.tif": mov[:3], "file_2.tif": mov[3:5], "file_10.tif": mov[5:]}
    for n in names:
        tifffile.imwrite(d / n, chunks[n], photometric="minisblack")
    (d / "notes.txt").write_text("x")
    assert [p.name for p in movie_files(d)] == ["file_1.tif", "file_2.tif", "file_10.tif"]
    m = open_movie(d)
    assert isinstance(m, da.Array) and m.shape == mov.shape
    np.testing.assert_array_equal(m.compute(), mov)
    m2 = open_movie([d / "file_1.tif", d / "file_2.tif"])
    np.testing.assert_array_equal(np.asarray(m2), mov[:5])


def test_mismatched_files(tmp_path, mov):
    tifffile.imwrite(tmp_path / "a1.tif", mov, photometric="minisblack")
    tifffile.imwrite(tmp_path / "a2.tif", mov[:, :6])
    with pytest.raises(InputError, match="a2.tif"):
        open_movie(tmp_path)
    tifffile.imwrite(tmp_path / "a2.tif", mov.astype(np.float32))
    with pytest.raises(InputError, match="a2.tif"):
        open_movie(tmp_path)


def test_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        open_movie(tmp_path / "nope.tif")
    (tmp_path / "x.tif").write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(InputError, match="cannot read .* as TIFF"):
        open_movie(tmp_path / "x.tif")
    (tmp_path / "x.avi").write_bytes(b"0")
    with pytest.raises(InputError, match="supported"):
        open_movie(tmp_path / "x.avi")
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((10, 12), np.uint16))
    with pytest.raises(InputError, match="single image"):
        open_movie(tmp_path / "img.tif")
    np.save(tmp_path / "img.npy", np.zeros((10, 12)))
    with pytest.raises(InputError, match="single image"):
        open_movie(tmp_path / "img.npy")
    with pytest.raises(InputError):
        save_movie(tmp_path / "m.avi", np.zeros((3, 4, 4)))
    with pytest.raises(InputError):
        save_movie(tmp_path / "missing_dir" / "m.tif", np.zeros((3, 4, 4)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no TIFF"):
        open_movie(tmp_path / "empty")


def test_caiman_mmap(tmp_path):
    T, d1, d2 = 5, 4, 3
    m = np.random.default_rng(4).random((T, d1, d2)).astype(np.float32)
    for order in ("C", "F"):
        yr = m.reshape(T, -1, order="F").T  # pixels x frames, pixels in F order
        p = tmp_path / f"Yr_d1_{d1}_d2_{d2}_d3_1_order_{order}_frames_{T}_.mmap"
        mm = np.memmap(p, mode="w+", dtype=np.float32, shape=yr.shape, order=order)
        mm[:] = yr
        mm.flush()
        del mm
        opened = open_movie(p)
        np.testing.assert_array_equal(np.asarray(opened), m)
        # a view onto the file, not a copy of it (CaImAn's C-order files are large)
        assert isinstance(opened, np.memmap) and not opened.flags.owndata
        assert get_reader(str(p)) is not None
    # 3D: d3 planes, z last in CaImAn's pixel order
    T, d1, d2, d3 = 4, 5, 3, 2
    vol = np.random.default_rng(5).random((T, d3, d1, d2)).astype(np.float32)  # (T, z, y, x)
    yr = vol.transpose(0, 2, 3, 1).reshape(T, -1, order="F").T
    p = tmp_path / f"Yr_d1_{d1}_d2_{d2}_d3_{d3}_order_C_frames_{T}_.mmap"
    mm = np.memmap(p, mode="w+", dtype=np.float32, shape=yr.shape, order="C")
    mm[:] = yr
    mm.flush()
    del mm
    np.testing.assert_array_equal(np.asarray(open_movie(p)), vol)


def test_reader(tmp_path, mov):
    p = save_movie(tmp_path / "movie.tif", mov)
    reader = get_reader(str(p))
    assert callable(reader)
    layers = reader(str(p))
    data, meta, kind = layers[0]
    assert kind == "image" and meta["name"] == "movie" and meta["metadata"]["path"] == str(p)
    assert isinstance(data, np.memmap)
    np.testing.assert_array_equal(np.asarray(data), mov)
    assert get_reader(str(tmp_path / "notes.txt")) is None
    with h5py.File(tmp_path / "res.hdf5", "w") as f:
        f["estimates/C"] = np.zeros((3, 10))
    assert get_reader(str(tmp_path / "res.hdf5")) is None
    save_movie(tmp_path / "mov.h5", mov)
    assert callable(get_reader(str(tmp_path / "mov.h5")))
    assert callable(get_reader(str(tmp_path)))  # folder of TIFFs


@pytest.mark.realdata
def test_real_data():
    nf = SHARED_DATA / "neurofinder_crop" / "movie.tif"
    fish = SHARED_DATA / "thunder_fish_3d" / "thunder_fish_240x2x76x87.tif"
    if not nf.exists() or not fish.exists():
        pytest.skip(f"shared data not found in {SHARED_DATA}")
    m = open_movie(nf)
    assert isinstance(m, np.memmap) and m.shape == (600, 256, 256) and m.dtype == np.uint16
    f = open_movie(fish)
    assert f.shape == (240, 2, 76, 87) and f.dtype == np.uint8
    assert float(np.asarray(f[:5]).std()) > 0
    assert callable(get_reader(str(fish)))
