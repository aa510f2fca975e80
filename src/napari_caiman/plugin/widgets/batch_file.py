"""The batch file part of the Batch dock: open or make one, the results folder, the motion cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Layer
from napari.qt.threading import create_worker

from ...engine.errors import InputError, StateError
from .batch_text import format_bytes, short_path

if TYPE_CHECKING:
    from ...app.batch import Batch


class BatchFileControls:
    """Open / New / Clear cache of :class:`~.batch.BatchWidget` (a mixin).

    Uses the widget's ``path``, ``movie``, ``results_label`` and
    ``cache_label`` fields, ``table``, ``_timer``, ``confirm``, ``refresh()``
    and ``_say()``.
    """

    batch: Any
    _closed: bool
    _cache_worker: Any
    _cache_again: bool

    def _movie_file(self, layer: Layer | None) -> Path | None:
        src = getattr(getattr(layer, "source", None), "path", None)
        return Path(src) if src else None

    def _suggest_path(self, *_: Any) -> None:
        """``batch.json`` next to the movie's file when no batch file is chosen yet."""
        if self.batch is not None or self.path.value:
            return
        movie = self._movie_file(self.movie.value)
        if movie is not None:
            folder = movie if movie.is_dir() else movie.parent
            self.path.value = folder / "batch.json"

    def _path(self) -> Path:
        value = self.path.value
        if not value or not str(value).strip():
            raise InputError("batch file", "choose a batch file (.json)")
        return Path(value).expanduser()

    def open_batch(self) -> None:
        """Open the batch file in the path field (it must exist)."""
        from ...app.batch import Batch

        path = self._path()
        if not path.is_file():
            raise InputError("batch file", f"{str(path)!r} does not exist (use New to make it)")
        self._set_batch(Batch(path))
        b = self.batch
        self._say(f"opened {path.name}: {len(b)} items, {len(b.queued())} queued")

    def new_batch(self) -> None:
        """Make a new, empty batch file at the path field."""
        from ...app.batch import Batch

        path = self._path()
        if path.exists():
            raise InputError("batch file", f"{str(path)!r} exists: Open it, or choose a new name")
        batch = Batch(path)
        batch.save()
        self._set_batch(batch)
        self._say(f"new batch {path.name}")

    def _set_batch(self, batch: Batch) -> None:
        if self.is_running:
            raise StateError("batch file", "the queue is running: cancel it first")
        self.batch = batch
        self._written.clear()
        self.table.row_names = []
        self.results_label.value = short_path(batch.results_dir)
        self.results_label.tooltip = str(batch.results_dir)
        self.refresh()
        self._timer.start()  # once a second: run times, and what other writers (the CLI) did

    def _ensure_batch(self) -> Batch:
        """Return the open batch, else the one at the path field (opened or created)."""
        if self.batch is not None:
            return self.batch
        path = self._path()
        if path.is_file():
            self.open_batch()
        else:
            self.new_batch()
        assert self.batch is not None
        return self.batch

    def refresh(self) -> None:
        """Update the queue table, the cache size and the buttons."""
        if self._closed:
            return
        self._refresh_table()
        self._refresh_cache()
        self._update_buttons()

    def _refresh_cache(self) -> None:
        """Show the cache's disk use, measured in a worker.

        It hashes each item's movie sample and opens its results file: seconds for a long batch.
        """
        if self.batch is None:
            self.cache_label.value = "cache: –"
            return
        if self._cache_worker is not None:
            self._cache_again = True
            return
        cache = self.batch.cache
        self.cache_label.tooltip = str(cache.root)
        self._cache_worker = create_worker(
            cache.size_bytes,
            _connect={"returned": self._show_cache_size, "finished": self._cache_done},
        )

    def _show_cache_size(self, size: int) -> None:
        if not self._closed:
            self.cache_label.value = f"cache: {format_bytes(size)}"

    def _cache_done(self) -> None:
        self._cache_worker = None
        if self._cache_again and not self._closed:
            self._cache_again = False
            self._refresh_cache()

    def clear_cache(self) -> None:
        """Delete the motion cache's entries (asks first; not while running)."""
        batch = self._require_batch()
        if self.is_running:
            raise StateError("cache", "the queue is running: wait or cancel it first")
        cache = batch.cache
        size = cache.size_bytes()
        if size == 0:
            self._say("the motion cache is empty")
            return
        if not self.confirm(
            f"Delete the motion cache ({format_bytes(size)} in {cache.root})?\n"
            "Motion correction will be recomputed for the next runs."
        ):
            return
        freed = cache.clear()
        self._refresh_cache()
        self._say(f"cache cleared ({format_bytes(freed)} freed)")
