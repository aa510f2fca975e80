"""The napari side: file readers, sample data, layer builders and the dock widgets.

The widgets (:mod:`napari_caiman.plugin.widgets`) and the layer builders
(:mod:`napari_caiman.plugin.layers`) live here with the npe2 readers and the
sample data; everything on this side may use the engine, io and the app.
"""
