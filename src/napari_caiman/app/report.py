"""What a headless run tells the terminal: progress lines or bars, and a summary of the results."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ..engine.progress import Progress

__all__ = ["ProgressPrinter", "ProgressBar", "make_progress", "summarize"]


class ProgressPrinter:
    """Prints a line per stage and about every 10 % within a stage (stderr)."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._stage: str | None = None
        self._last_decile = -1
        self._t0 = time.perf_counter()

    def __call__(self, p: Progress) -> None:
        """Print a line for a new stage and for every tenth of a stage's progress."""
        if self.quiet:
            return
        decile = int(p.fraction * 10)
        if p.stage != self._stage or decile > self._last_decile:
            self._stage, self._last_decile = p.stage, decile
            elapsed = time.perf_counter() - self._t0
            print(f"[{elapsed:7.1f} s] {p}", file=self.stream, flush=True)

    def close(self) -> None:
        """Do nothing: plain lines leave nothing open."""
        pass


class ProgressBar:
    """A tqdm progress bar with ETA per stage (stderr is a terminal).

    One bar per step, named by its stage; a new stage closes the previous bar.
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._stage: str | None = None

    def __call__(self, p: Progress) -> None:
        """Advance the bar of ``p``'s stage (a new stage closes the previous bar)."""
        from tqdm import tqdm

        if p.stage != self._stage or self._bar is None:
            self.close()
            self._stage = p.stage
            self._bar = tqdm(
                total=max(p.total, 1),
                desc=p.stage,
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        bar = self._bar
        if max(p.total, 1) != bar.total:
            bar.total = max(p.total, 1)
        bar.update(min(p.done, bar.total) - bar.n)
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)

    def close(self) -> None:
        """Close the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(quiet: bool = False, stream: Any = None) -> Any:
    """Return the CLI's progress reporter.

    A tqdm bar per stage when ``stream`` (stderr) is a terminal, else plain lines (logs, pipes);
    nothing if quiet.
    """
    stream = stream or sys.stderr
    if not quiet and getattr(stream, "isatty", lambda: False)():
        return ProgressBar(stream)
    return ProgressPrinter(stream, quiet=quiet)


def summarize(
    results: Any, elapsed: float | None = None, *, timings: bool | dict[str, float] = True
) -> str:
    """Return a few lines describing a run, for the terminal.

    ``timings``: True to show the recorded step times (a run that just
    happened), False for none (a file re-read, e.g. by ``evaluate``), or a
    dict of the steps that ran now.
    """
    from ..engine.validate import caiman_dims

    dims = tuple(results.dims)
    axes = "Y, X" if len(dims) == 2 else "Z, Y, X"
    lines = [
        f"frame shape: {dims} (array order {axes}; CaImAn's dims (rows, cols"
        f"{'' if len(dims) == 2 else ', planes'}) = {caiman_dims(dims)})"
    ]
    times = results.provenance.get("timings", {}) if timings is True else (timings or {})
    fr_note = results.provenance.get("fr_source")
    if fr_note:
        lines.append(f"fr: {results.params['fr']:g} Hz ({fr_note})")
    m = results.motion
    if m is not None:
        s = np.asarray(m["shifts_rig"])
        lines.append(
            f"motion: {len(s)} frames, rigid shifts max |{np.abs(s).max():.2f}| px, "
            f"crispness {m['crispness_raw']:.1f} -> {m['crispness_corrected']:.1f} "
            f"(sharpness of the mean image: higher is sharper), "
            f"mean corr with template {np.nanmean(m['corr_raw']):.3f} -> {np.nanmean(m['corr_corrected']):.3f}"
        )
        timing = times.get("motion")
        if timing:
            lines.append(f"motion correction: {timing:.1f} s ({len(s) / timing:.0f} frames/s)")
    e = results.estimates
    if e is not None:
        timing = times.get("cnmf")
        lines.append(f"cnmf: {e.A.shape[1]} components" + (f" in {timing:.1f} s" if timing else ""))
        accepted = results.accepted()
        if accepted is not None:
            n_manual = 0 if results.curation is None else results.curation.n_decisions
            timing = times.get("evaluate")
            lines.append(
                f"evaluation: {len(accepted)} accepted, {e.A.shape[1] - len(accepted)} rejected"
                + (f" ({n_manual} manual decisions)" if n_manual else "")
                + (f" in {timing:.1f} s" if timing else "")
            )
    if elapsed is not None:
        lines.append(f"total: {elapsed:.1f} s")
    return "\n".join(lines)
