import pytest

pytestmark = pytest.mark.gui


@pytest.mark.realdata
def test_caiman_results_open_in_the_viewer(
    shared_data, make_napari_viewer
):  # skip before a viewer exists
    viewer = make_napari_viewer()
    path = shared_data / "caiman_results" / "neurofinder_crop_caiman.hdf5"
    viewer.open(str(path), plugin="napari-caiman")
    names = [layer.name for layer in viewer.layers]
    stem = path.stem
    assert (
        f"{stem} contours" in names
        and f"{stem} footprints" in names
        and f"{stem} correlation" in names
    )
    contours = viewer.layers[f"{stem} contours"]
    assert len(set(contours.metadata["napari_caiman"]["outlines"].component.tolist())) == 303
    assert contours.rgb and contours.data.shape == (512, 512, 4)
    assert viewer.layers[f"{stem} footprints"].data.shape == (256, 256)
