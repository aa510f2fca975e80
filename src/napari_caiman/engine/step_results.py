"""What each pipeline step returns (the native engine and the CaImAn backend alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MotionStepResult", "CnmfStepResult", "EvaluateStepResult"]


@dataclass
class MotionStepResult:
    """Motion correction plus the summary images of the corrected movie."""

    motion: Any  # engine.motion.MotionResult
    summary: Any  # engine.summary.SummaryImages
    timings: dict[str, float] = field(default_factory=dict)
    #: the tile-major copy CNMF's patches read (engine.cnmf.tiles.TileStore), written with the
    #: corrected frames when asked (``iter_motion_step(for_cnmf=True)``); whoever takes it closes it
    tiles: Any = None


@dataclass
class CnmfStepResult:
    """CNMF estimates plus the summary images (``Cn`` = correlation image) of the movie."""

    estimates: Any  # engine.cnmf.estimates.Estimates
    summary: Any  # engine.summary.SummaryImages
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class EvaluateStepResult:
    """Quality metrics, the threshold result (also set on the estimates) and dF/F."""

    metrics: Any  # engine.evaluation.Metrics
    F_dff: Any
    timings: dict[str, float] = field(default_factory=dict)
