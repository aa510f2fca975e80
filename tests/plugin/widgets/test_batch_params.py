"""The Batch dock takes a new item's parameters from the step docks' forms on the
viewer's shared state (plugin/widgets/_state.py), driven the way a user does it:
docks opened from the manifest, fields typed, a dock closed with its "x"."""

from __future__ import annotations

import pytest
import tifffile

from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.synthetic import make_movie_2d

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def movie_file(tmp_path_factory):
    movie = make_movie_2d((60, 40, 40), n_neurons=4, seed=3, return_flow=False)
    path = tmp_path_factory.mktemp("movie") / "cells.tif"
    tifffile.imwrite(path, movie.movie)
    return path


@pytest.fixture
def shown(monkeypatch):
    out: dict[str, list[str]] = {"error": [], "info": []}
    monkeypatch.setattr("napari_caiman.plugin.widgets.batch.show_error", out["error"].append)
    monkeypatch.setattr("napari_caiman.plugin.widgets.batch_items.show_info", out["info"].append)
    monkeypatch.setattr("napari_caiman.plugin.widgets._runner.show_error", out["error"].append)
    return out


def _dock(viewer, name):
    return viewer.window.add_plugin_dock_widget("napari-caiman", name)[1]


def _close(widget):
    """napari's "x" on the widget's dock."""
    widget.native.parent().title.close_button.click()


def test_items_take_the_open_docks_forms_and_closing_a_dock_drops_its_form(
    viewer, movie_file, tmp_path, shown
):
    batch = _dock(viewer, "Batch")
    (layer,) = viewer.open(movie_file, plugin="napari-caiman")
    batch.movie.value = layer
    batch.path.value = tmp_path / "runs.json"
    batch.new_button.native.click()
    motion, cnmf = _dock(viewer, "Motion correction"), _dock(viewer, "CNMF")
    evaluation = _dock(viewer, "Evaluation / curation")
    # values typed into each dock's fields
    motion.max_shifts.boxes[0].value = motion.max_shifts.boxes[1].value = 3
    cnmf.K.value, cnmf.merge_thr.value = 5, 0.7
    evaluation.min_SNR.value, evaluation.min_size.value = 3.5, 10

    def add(name):
        batch.item_name.value = name
        batch.add_button.native.click()
        return batch.batch.item(name).params if name in batch.batch.names else None

    a = add("a")
    assert shown["error"] == [], shown["error"]
    assert a["max_shifts"] == [3, 3] and a["K"] == 5 and a["merge_thr"] == 0.7
    assert a["min_SNR"] == 3.5 and a["min_size"] == 10
    assert "Motion correction + CNMF + Evaluation" in batch.message.value
    # a value changed after the first item reaches the next one (read when adding)
    cnmf.K.value = 6
    assert add("a2")["K"] == 6

    # the CNMF dock closed: its form is gone, the item takes CaImAn's CNMF defaults
    _close(cnmf)
    b = add("b")
    assert shown["error"] == [], shown["error"]
    defaults = CaimanParams.defaults()
    assert b.get("K", defaults["K"]) == defaults["K"]
    assert b.get("merge_thr", defaults["merge_thr"]) == defaults["merge_thr"]
    assert b["max_shifts"] == [3, 3] and b["min_SNR"] == 3.5
    assert "Motion correction + Evaluation" in batch.message.value
    assert "CNMF" not in batch.message.value

    # opened again, its form is published again
    cnmf = _dock(viewer, "CNMF")
    cnmf.K.value = 8
    assert add("c")["K"] == 8 and "Motion correction + CNMF + Evaluation" in batch.message.value

    # a bad field in a dock: the item is refused with that dock named, no traceback
    motion.kwargs.value = "{'niter_rig': "
    assert add("d") is None
    assert "Motion correction dock" in shown["error"][-1], shown["error"]
    motion.kwargs.value = ""

    # every step dock closed: the default parameters, and the Batch dock still adds items
    for widget in (motion, cnmf, evaluation):
        _close(widget)
    e = add("e")
    assert e is not None and "default parameters" in batch.message.value
    assert e.get("min_SNR", defaults["min_SNR"]) == defaults["min_SNR"]
