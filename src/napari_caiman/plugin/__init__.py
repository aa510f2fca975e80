"""The napari side that is not a dock widget or a layer builder: file readers and sample data.

The widgets (:mod:`napari_caiman.widgets`) and layer builders
(:mod:`napari_caiman.layers`) belong to this side too (they are due to move
here); everything on this side may use the engine, io and the app.
"""
