"""Exceptions the engine raises; each names the argument at fault."""

from __future__ import annotations


class NapariCaimanError(Exception):
    """Base class for every error this package raises on purpose."""


class InputError(NapariCaimanError, ValueError):
    """Bad user input (movie, parameter, file), with a plain message.

    Parameters
    ----------
    argument : str
        Name of the argument or parameter that is wrong (e.g. ``"max_shifts"``).
    message : str
        What is wrong and what was expected.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}")


class Cancelled(NapariCaimanError):
    """Raised inside an operation when the caller asked it to stop."""
