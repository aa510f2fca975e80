"""Every exception this package raises on purpose (one module, so the engine, io and app share them).

::

    NapariCaimanError
    ├── InputError          bad user input: a movie, a parameter, a path (also a ValueError)
    │   └── ResultsFileError    a results file that is missing, not HDF5, damaged or not in the layout
    └── StateError          the operation does not fit the current state: busy, nothing queued, ...

Each carries ``argument`` (what is at fault) and ``message``; ``str()`` is
``"<argument>: <message>"``, the one line the CLI and the docks show.
"""

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


class ResultsFileError(InputError):
    """A results file that cannot be read.

    Missing, not HDF5, truncated or damaged, not in the results layout, or parts that do not fit
    together.
    """


class StateError(NapariCaimanError):
    """The request does not fit the current state.

    A step or queue is busy, nothing is queued, an item is running, there is no result yet.

    Parameters
    ----------
    argument : str
        What the state is about (e.g. ``"queue"``, ``"item"``).
    message : str
        What is the matter and what to do.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}")


def error_line(exc: BaseException) -> str:
    """One line for a failure (a batch item's error, a log line).

    Our errors as they are, others with their type (``"ValueError: ..."``).
    """
    return str(exc) if isinstance(exc, NapariCaimanError) else f"{type(exc).__name__}: {exc}"


# A cancel is not an error: every long operation is a generator, and the
# caller cancels it by closing it (GeneratorExit at the current yield; see
# engine/progress.py). No exception class stands for it.
