"""Save / Load preset buttons, shared by the step widgets.

A preset is a JSON file of flat CaImAn names (see
:func:`~._settings.write_preset` / :func:`~._settings.read_preset`), so a
CaImAn user's ``params_dict`` and the CLI's ``--params`` file are presets too.
Loading applies what the step can take: names the form has go into its
fields, other names the step uses into its kwargs text, the rest is reported
as not used. A preset saved from one step therefore loads into any step.

The file dialogs are the attributes :attr:`PresetBar.ask_save_path` and
:attr:`PresetBar.ask_open_path` (tests replace them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    PushButton,
    SpinBox,
    Widget,
)
from napari.utils.notifications import show_info

from ...engine.params import parse_kwargs
from ._settings import PER_MOVIE, format_kwargs, read_preset, write_preset

#: File filter of the preset dialogs.
PRESET_FILTER = "Parameter preset (*.json);;All files (*)"


def ask_save_path(parent: Any, caption: str, start: str) -> str:
    """Qt's save dialog; ``""`` when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(parent, caption, start, PRESET_FILTER)
    return path


def ask_open_path(parent: Any, caption: str, start: str) -> str:
    """Qt's open dialog; ``""`` when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(parent, caption, start, PRESET_FILTER)
    return path


# --- fitting a CaImAn value into a form field ----------------------------------------


def _integral(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fit_field(widget: Widget, value: Any) -> tuple[bool, Any]:
    """Return ``(True, form value)`` when the form field ``widget`` can show ``value`` exactly.

    ``value`` is a CaImAn value; else ``(False, None)`` (it then goes into the kwargs text, which
    overrides the form).

    Per-axis fields (``.boxes``, y, x, z) take a scalar, 1 to 3 values or
    ``None`` (all zeros: off / automatic); a missing z keeps the field's z.
    Sliders take any number (their range grows when it is applied).
    """
    if hasattr(widget, "boxes"):  # per-axis field (motion.AxesEdit)
        boxes = widget.boxes
        current = tuple(widget.value)
        if value is None:
            return True, (0,) * len(boxes)
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if not 1 <= len(values) <= len(boxes):
            return False, None
        if len(values) == 1:
            values = (values[0], values[0])
        values = values + current[len(values) :]
        if not all(_integral(v) for v in values):
            return False, None
        if not all(b.min <= v <= b.max for b, v in zip(boxes, values, strict=True)):
            return False, None
        return True, tuple(int(v) for v in values)
    if hasattr(widget, "choices"):  # ComboBox, BackendEdit: same value and type
        for choice in widget.choices:
            if choice == value and type(choice) is type(value):
                return True, choice
        return False, None
    if isinstance(widget, CheckBox):
        return (True, value) if isinstance(value, bool) else (False, None)
    if isinstance(widget, FloatSlider):
        return (True, float(value)) if _number(value) else (False, None)
    if isinstance(widget, FloatSpinBox):
        ok = _number(value) and widget.min <= value <= widget.max
        return (True, float(value)) if ok else (False, None)
    if isinstance(widget, SpinBox):
        ok = _integral(value) and widget.min <= value <= widget.max
        return (True, int(value)) if ok else (False, None)
    return False, None


def set_field(widget: Widget, value: Any) -> None:
    """Put a value from :func:`fit_field` into ``widget`` (sliders widen to it)."""
    if isinstance(widget, FloatSlider):
        widget.min = min(widget.min, value)
        widget.max = max(widget.max, value)
    widget.value = value


# --- applying a preset -----------------------------------------------------------------


@dataclass
class PresetReport:
    """What loading a preset did: names into the form, into kwargs, not used."""

    form: list[str] = field(default_factory=list)
    kwargs: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def text(self, step: str, source: str) -> str:
        """One line for the user."""

        def names(items: list[str], n: int = 6) -> str:
            more = f", … (+{len(items) - n})" if len(items) > n else ""
            return ", ".join(items[:n]) + more

        parts = [f"{len(self.form)} into the form"]
        if self.kwargs:
            parts.append(f"{len(self.kwargs)} into kwargs ({names(self.kwargs)})")
        if self.unused:
            parts.append(f"{len(self.unused)} not used by {step} ({names(self.unused)})")
        return f"Preset {source}: " + "; ".join(parts)


def apply_preset(
    form: Container,
    values: Mapping[str, Any],
    *,
    form_names: Iterable[str],
    step_names: Iterable[str],
) -> PresetReport:
    """Put a preset's ``values`` into ``form``.

    Names in ``form_names`` go into the fields ``getattr(form, name)`` when
    the value fits (see :func:`fit_field`); other names in ``step_names`` go
    into ``form.kwargs``, where they override the form. Entries of the kwargs
    text that the preset sets are replaced; the others stay. ``backend`` is
    applied first (it decides e.g. the initialization methods offered).

    Raises
    ------
    InputError
        The kwargs text cannot be read (nothing is changed then).
    """
    form_names, step_names = set(form_names), set(step_names)
    old_kwargs = parse_kwargs(form.kwargs.value)  # raises before anything changes
    report = PresetReport()
    extra: dict[str, Any] = {}
    order = sorted(values, key=lambda name: name != "backend")
    for name in order:
        value = values[name]
        if name in PER_MOVIE or name not in step_names | form_names:
            report.unused.append(name)
            continue
        if name in form_names:
            widget = getattr(form, name)
            ok, form_value = fit_field(widget, value)
            if ok:
                set_field(widget, form_value)
                report.form.append(name)
                continue
        extra[name] = value
        report.kwargs.append(name)
    kwargs = {k: v for k, v in old_kwargs.items() if k not in values}
    kwargs.update(extra)
    form.kwargs.value = format_kwargs(kwargs)
    return report


class PresetBar(Container):
    """The "Save preset…" and "Load preset…" buttons of one step form.

    Parameters
    ----------
    step : str
        The step's name, for messages and the default file name.
    form : Container
        The step widget: fields are its attributes of the parameters' names,
        ``form.kwargs`` its kwargs text box.
    form_names, step_names : iterable of str
        Parameters the form has fields for; parameters the step uses.
    get_values : callable
        ``() -> {name: value}``: the form's parameters (flat CaImAn names)
        to save; may raise ``InputError``.
    report_error : callable
        Shows an error (the step's ``runner.report_error``).

    Attributes
    ----------
    ask_save_path, ask_open_path : callable ``(parent, caption, start) -> str``
        The file dialogs; return ``""`` when cancelled. Replace them to
        script the buttons.
    last_report : PresetReport or None
        What the last load did.
    """

    #: Folder of the last preset saved or loaded (shared by the steps).
    last_dir: str = ""

    def __init__(
        self,
        step: str,
        form: Container,
        *,
        form_names: Iterable[str],
        step_names: Iterable[str],
        get_values: Callable[[], Mapping[str, Any]],
        report_error: Callable[[BaseException], Any],
    ) -> None:
        self.step = step
        self._form = form
        self.form_names = frozenset(form_names)
        self.step_names = frozenset(step_names)
        self._get_values = get_values
        self._report_error = report_error
        self.ask_save_path: Callable[[Any, str, str], str] = ask_save_path
        self.ask_open_path: Callable[[Any, str, str], str] = ask_open_path
        self.last_report: PresetReport | None = None
        self.save_button = PushButton(
            text="Save preset…",
            tooltip="Write this form's parameters to a JSON file of CaImAn names "
            "(usable by every step and by `napari-caiman run --params`)",
        )
        self.load_button = PushButton(
            text="Load preset…",
            tooltip="Fill the form from a JSON file of CaImAn names (e.g. a saved preset or "
            "a CaImAn params_dict); names without a field go into kwargs",
        )
        super().__init__(
            widgets=[self.load_button, self.save_button], layout="horizontal", labels=False
        )
        self.margins = (0, 0, 0, 0)
        self.save_button.changed.connect(self._on_save)
        self.load_button.changed.connect(self._on_load)

    def _start(self, name: str = "") -> str:
        folder = PresetBar.last_dir
        return str(Path(folder) / name) if folder else name

    def _on_save(self, *_: Any) -> None:
        file_name = f"{self.step.lower().replace(' ', '_')}_preset.json"
        path = self.ask_save_path(
            self._form.native, f"Save {self.step} preset", self._start(file_name)
        )
        if path:
            try:
                self.save(path)
            except Exception as exc:
                self._report_error(exc)

    def _on_load(self, *_: Any) -> None:
        path = self.ask_open_path(
            self._form.native, f"Load a preset into {self.step}", self._start()
        )
        if path:
            try:
                self.load(path)
            except Exception as exc:
                self._report_error(exc)

    def save(self, path: str | Path) -> Path:
        """Write the form's parameters to ``path`` (JSON, atomically)."""
        values = dict(self._get_values())
        if Path(path).suffix == "":
            path = Path(path).with_suffix(".json")
        out = write_preset(path, values)
        PresetBar.last_dir = str(out.parent)
        self._notify(f"Saved {self.step} preset {out.name} ({len(values)} parameters)")
        return out

    def load(self, path: str | Path) -> PresetReport:
        """Read the preset at ``path`` and apply it to the form.

        Raises
        ------
        InputError
            The file cannot be read, holds unknown names or bad values, or
            the kwargs text is not a dict (the form is left unchanged).
        """
        values = read_preset(path)
        report = apply_preset(
            self._form, values, form_names=self.form_names, step_names=self.step_names
        )
        PresetBar.last_dir = str(Path(path).parent)
        self.last_report = report
        self._notify(report.text(self.step, Path(path).name))
        return report

    def _notify(self, text: str) -> None:
        runner = getattr(self._form, "runner", None)
        if runner is not None and not runner.is_running:
            runner.status.value = text if len(text) < 90 else text[:87] + "…"
        show_info(text)
