"""What the Motion correction and CNMF docks share: a step form on one movie layer.

:class:`StepForm` is their base: the movie choice (the viewer's movie layers,
kept up to date as layers come, go and are renamed), the form <-> settings
(``SETTINGS``: a :class:`~._settings.FormSettings` whose field names are the
form's fields), the per-axis fields fitted to the chosen movie (2 or 3
spatial axes, the planes values a volume allows), Reset to defaults, and the
form published on the viewer's shared state while docked (what the Batch dock
queues: :meth:`StepForm.form_params`, see :mod:`._publish`).
A subclass builds its fields, then calls ``Container.__init__`` and
:meth:`_start` once they are all there.
"""

from __future__ import annotations

from typing import Any, ClassVar

from magicgui.widgets import Container
from napari.layers import Layer

from ._fields import fit_planes
from ._layers import movie_layer_choices
from ._publish import publish_while_docked
from ._warmup import warm_up


class StepForm(Container):
    """The base of the step docks' forms (see the module)."""

    #: The settings class of the form (its field names are the form's fields).
    SETTINGS: ClassVar[Any]
    #: The per-axis fields (AxesEdit), fitted to the chosen movie's axes.
    PER_AXIS: ClassVar[tuple[str, ...]]

    _viewer: Any

    def _start(self, viewer: Any) -> None:
        """Follow the viewer's layers and the movie choice (call once the fields exist)."""
        self.movie.changed.connect(self._on_movie_changed)
        self.reset_button.changed.connect(self.reset_defaults)
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_layer_renamed)
        publish_while_docked(viewer, self, self.SETTINGS.STEP, self.form_params)
        warm_up(viewer)  # napari's first-layer costs, in idle turns before any step runs

    # -- form <-> settings ---------------------------------------------------------
    def get_settings(self) -> Any:
        """Return the form's values."""
        return self.SETTINGS(
            **{name: self._field_value(name) for name in self.SETTINGS.field_names()}
        )

    def form_params(self, frame_shape: tuple[int, ...]) -> dict[str, Any]:
        """Return the form's values as flat CaImAn parameters for frames of ``frame_shape``.

        ``frame_shape`` in array order; raises ``InputError`` naming a bad field.
        """
        return self.get_settings().for_frames(frame_shape).to_dict()

    def set_settings(self, settings: Any) -> None:
        """Fill the form from ``settings``."""
        for name, value in settings.as_form().items():
            self._set_field(name, value)

    def _field_value(self, name: str) -> Any:
        return getattr(self, name).value

    def _set_field(self, name: str, value: Any) -> None:
        getattr(self, name).value = value

    def _defaults(self) -> Any:
        """Return what Reset to defaults puts back (CaImAn's defaults)."""
        return self.SETTINGS.defaults()

    def reset_defaults(self, *_: Any) -> None:
        """Put CaImAn's defaults back (the movie choice is kept)."""
        self.set_settings(self._defaults())
        self._on_movie_changed(self.movie.value)  # z values for this movie's planes
        if not self.runner.is_running:  # an old error no longer applies
            self.runner.status.value = "ready"
            self.runner.progress.value = 0

    # -- layer choices ---------------------------------------------------------------
    def _movie_choices(self, *_: Any) -> list[tuple[str, Layer]]:
        return movie_layer_choices(self._viewer)

    def _reset_choices(self) -> None:
        self.movie.reset_choices()

    def _on_layers_changed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if event is not None and event.type == "inserted" and isinstance(layer, Layer):
            layer.events.name.connect(self._on_layer_renamed)
        self._reset_choices()

    def _on_layer_renamed(self, event: Any = None) -> None:
        self._reset_choices()

    def _on_movie_changed(self, layer: Any) -> None:
        """Show the z fields for a volume, with the planes values its depth allows."""
        n_spatial = 3 if layer is not None and layer.ndim == 4 else 2
        for name in self.PER_AXIS:
            getattr(self, name).set_n_axes(n_spatial)
        if n_spatial == 3:
            fit_planes([getattr(self, name) for name in self.PER_AXIS], int(layer.data.shape[1]))

    @property
    def n_spatial(self) -> int:
        """2 or 3: spatial axes of the selected movie (3 shows the z fields)."""
        return getattr(self, self.PER_AXIS[0]).n_axes
