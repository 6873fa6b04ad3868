"""Decisions on a stream and their smoothing, so the shown label does not flicker.

An exponential moving average over the class probabilities (``smoothing`` = weight kept from
the past, 0 = off) and hysteresis (the shown label switches only when a new label beats it by
``switch_margin`` on ``switch_patience`` consecutive decisions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harkit.infer.errors import InferenceError

__all__ = ["Decision", "LabelSmoother"]


class LabelSmoother:
    """EMA over probabilities + hysteresis on the shown label."""

    def __init__(self, smoothing: float = 0.5, margin: float = 0.1, patience: int = 3) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise InferenceError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.margin = margin
        self.patience = max(1, patience)
        self.probs: np.ndarray | None = None
        self.current: int | None = None
        self._pending: int | None = None
        self._count = 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """Fold in new probabilities; return (shown class, smoothed probabilities)."""
        if self.probs is None:
            self.probs = probs.copy()
        else:
            self.probs = self.smoothing * self.probs + (1.0 - self.smoothing) * probs
        best = int(self.probs.argmax())
        if self.current is None:
            self.current = best
        elif best != self.current and self.probs[best] >= self.probs[self.current] + self.margin:
            self._count = self._count + 1 if best == self._pending else 1
            self._pending = best
            if self._count >= self.patience:
                self.current, self._pending, self._count = best, None, 0
        else:
            self._pending, self._count = None, 0
        return self.current, self.probs


@dataclass
class Decision:
    """One recognition result on the stream (a JSON line).

    While the stream warms up (fewer than ``warmup_steps`` sampled steps, and not the final
    decision) ``label``, ``confidence``, ``raw_label`` and ``raw_confidence`` are None: the
    head has seen less than a training clip, and its answer then is a guess.
    """

    timestamp: float
    frame: int
    label: str | None
    confidence: float | None
    latency_ms: float
    raw_label: str | None
    raw_confidence: float | None
    final: bool = False
    """The answer at the end of a file (or another source that ended): on a file sampled as
    predict samples it (see :func:`~harkit.infer.stream_plan.plan_stream`), predict's answer. Never warming up."""
    steps: int = 0
    """Sampled steps the stream has taken (segments for segment backbones)."""
    warmup_steps: int = 0
    """Steps before the first label (default: the window, one training clip's steps)."""
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Unsmoothed class probabilities of this decision, also while warming up (for checks;
    not in the JSON line)."""

    @property
    def warming_up(self) -> bool:
        return self.label is None

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "probs"}
        for key in ("timestamp", "confidence", "raw_confidence"):
            if row[key] is not None:
                row[key] = round(row[key], 4)
        row["latency_ms"] = round(row["latency_ms"], 2)
        return {"type": "decision", **row, "warming_up": self.warming_up}

    def text(self) -> str:
        """The label, or the warm-up marker: ``warming up (3/8 steps)``."""
        if self.label is None:
            return f"warming up ({self.steps}/{self.warmup_steps} steps)"
        return f"{self.label} {self.confidence:.2f}"
