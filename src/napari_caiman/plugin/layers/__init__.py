"""Results -> napari layer data tuples, and curation edits back (no Qt here)."""
