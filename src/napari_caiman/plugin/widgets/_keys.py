"""Key bindings a dock widget adds to the viewer and layers, removed again when the dock closes.

napari 0.9 reads ``__name__`` of every function bound with ``bind_key`` (on
each key press, and on Return in any dock field), so the bound functions are
real named functions, never ``functools.partial`` objects. They hold the
widget weakly, turn its errors into notifications, and are unbound by
:meth:`KeyBindings.clear` (called when the dock is closed), which also puts
back what they replaced.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from napari.utils.key_bindings import coerce_keybinding

from ._layers import unwrap


def named_key_function(
    owner: Any, name: str, action: Callable[[Any], Any], report: Callable[[Any, Exception], Any]
) -> Callable[..., None]:
    """Return a function napari can bind.

    Calls ``action(owner)`` (``owner`` held weakly), errors go to ``report(owner, exc)``; its
    ``__name__`` is ``name``.
    """
    ref = weakref.ref(owner)

    def key_function(*_: Any) -> None:
        target = ref()
        if target is None:
            return
        try:
            action(target)
        except Exception as exc:  # a key press must never raise into Qt
            report(target, exc)

    key_function.__name__ = key_function.__qualname__ = name
    return key_function


class KeyBindings:
    """Bindings made on keymap providers (a viewer, layers), undone by :meth:`clear`."""

    def __init__(self) -> None:
        # (provider, key, our function, what was bound before or None)
        self._bound: list[tuple[Any, str, Callable[..., Any], Any]] = []

    def bind(self, provider: Any, key: str, func: Callable[..., Any]) -> None:
        """Bind ``func`` to ``key`` on ``provider`` (replacing an earlier binding of ours)."""
        target = unwrap(provider)
        binding = coerce_keybinding(key)
        previous = target.keymap.get(binding)
        for i, (p, k, _f, prev) in enumerate(self._bound):
            if p is target and k == key:  # ours already: keep what was there before us
                previous = prev
                del self._bound[i]
                break
        target.bind_key(key, func, overwrite=True)
        self._bound.append((target, key, func, previous))

    def is_bound(self, provider: Any) -> bool:
        """Whether some of our bindings are on ``provider``."""
        target = unwrap(provider)
        return any(p is target for p, *_ in self._bound)

    def clear(self) -> None:
        """Remove every binding still ours; put back what each replaced."""
        for provider, key, func, previous in reversed(self._bound):
            binding = coerce_keybinding(key)
            with contextlib.suppress(Exception):  # a layer or viewer already gone
                if provider.keymap.get(binding) is func:
                    del provider.keymap[binding]
                    if previous is not None:
                        provider.keymap[binding] = previous
        self._bound.clear()
