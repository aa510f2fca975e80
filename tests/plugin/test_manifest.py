"""The npe2 manifest: it validates, napari knows the plugin and its contributions."""

from __future__ import annotations

import importlib

import pytest
from npe2 import PluginManager, PluginManifest


def test_manifest_is_valid_and_complete():
    manifest = PluginManifest.from_distribution("napari-caiman")
    assert manifest.name == "napari-caiman"
    assert manifest.display_name == "napari-caiman"
    contrib = manifest.contributions
    assert [w.display_name for w in contrib.widgets] == [
        "Motion correction",
        "CNMF",
        "Evaluation / curation",
        "Batch",
    ]
    assert [s.key for s in contrib.sample_data] == ["synthetic_2d", "synthetic_3d"]
    reader, results_reader = contrib.readers
    assert reader.accepts_directories
    assert {"*.tif", "*.tiff", "*.npy", "*.mmap", "*.h5", "*.hdf5"} <= set(reader.filename_patterns)
    assert results_reader.command == "napari-caiman.get_results_reader"
    assert {"*.h5", "*.hdf5"} <= set(results_reader.filename_patterns)
    # every command resolves to a callable
    for command in contrib.commands:
        module, attr = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id


def test_napari_lists_the_plugin():
    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-caiman")
    assert "napari-caiman.make_motion_widget" in [c.id for c in manifest.contributions.commands]


@pytest.mark.gui
def test_sample_data_opens(viewer):
    layers = viewer.open_sample("napari-caiman", "synthetic_2d")
    assert [layer.data.shape for layer in layers] == [(300, 128, 128)]
    layers = viewer.open_sample("napari-caiman", "synthetic_3d")
    assert layers[0].data.ndim == 4
