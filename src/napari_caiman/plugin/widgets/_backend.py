"""The "backend" field of the step forms: the native engine or CaImAn's own code.

The field is a combobox with a line under it that says whether CaImAn can be
used here (:func:`napari_caiman.engine.backends.caiman_status`, which does
not import CaImAn and is cached). A step whose parameters ask for an
unavailable backend does not start: :func:`check_backend` raises an
``InputError`` that the Run button shows as a notification.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Label
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QSizePolicy

from ...engine.errors import InputError

#: The backends, as the ``backend`` parameter spells them.
BACKENDS = ("native", "caiman")

#: What each backend offers (tooltips).
BACKEND_TIPS = {
    "native": "native: this plugin's own engine — fast, with a progress bar and Cancel",
    "caiman": (
        "caiman: CaImAn's own code, run in a separate process (needs CaImAn installed) — "
        "CNN evaluation and every initialization method"
    ),
}

#: Shown when this installation has no CaImAn adapter at all.
NO_ADAPTER = "CaImAn backend not available in this version"


def caiman_backend_status() -> tuple[bool, str]:
    """``(ok, message)``: can the CaImAn backend run here, and why (not)."""
    try:  # imported here: the adapter is optional
        from ...engine.backends import caiman_status
    except ImportError:
        return False, NO_ADAPTER
    try:
        ok, message = caiman_status()
    except Exception as exc:  # a broken installation must not break the form
        return False, f"could not check for CaImAn: {exc}"
    return bool(ok), str(message)


def check_backend(backend: str) -> None:
    """Raise ``InputError`` when ``backend`` cannot run here (no-op for native).

    Raises
    ------
    InputError
        ``backend`` is ``"caiman"`` and CaImAn is not available; the message
        says why and suggests the native backend.
    """
    if backend != "caiman":
        return
    ok, message = caiman_backend_status()
    if not ok:
        raise InputError("backend", f"{message} — choose backend 'native' to run this step here")


class BackendEdit(ComboBox):
    """Combobox native | caiman.

    :attr:`message` is a label for the line below it, saying whether CaImAn can be used here (put
    both in the form).

    ``value`` is the backend name (as in the ``backend`` parameter).
    """

    def __init__(self, value: str = "native") -> None:
        super().__init__(
            value=value,
            choices=list(BACKENDS),
            name="backend",
            label="backend",
            tooltip="\n".join(BACKEND_TIPS.values()),
        )
        for i, name in enumerate(BACKENDS):
            self.native.setItemData(i, BACKEND_TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.message = Label(value="", name="backend_status", label=" ")  # no row label
        self.message.native.setWordWrap(True)
        # a long message wraps inside the dock instead of widening it
        self.message.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.ok = True
        self.changed.connect(self._show_status)
        self._show_status()

    def _show_status(self, *_: Any) -> None:
        if self.value == "caiman":
            self.ok, text = caiman_backend_status()
        else:
            self.ok, text = True, ""
        # the full text names paths that do not wrap: show it short, all of it on hover
        self.message.value = (
            f"{text.split(' at ')[0]} found (hover for where)" if self.ok and text else text
        )
        self.message.tooltip = text
        self.message.native.setStyleSheet("" if self.ok else "color: #e8a33d;")
        self.message.visible = bool(text)
