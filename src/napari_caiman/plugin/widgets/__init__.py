"""Qt front end.

One magicgui Container per pipeline step, plus the shared runner (worker, progress, cancel, errors)
and plot docks.

Modules are imported lazily by npe2 (``napari.yaml``), so importing this
package does not import Qt.
"""
