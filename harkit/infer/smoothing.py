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
    """One recognition result on the stream (a JSON line)."""

    timestamp: float
    frame: int
    label: str
    confidence: float
    latency_ms: float
    raw_label: str
    raw_confidence: float
    final: bool = False
    """The decision on a file's complete predict sampling (see :func:`plan_stream`)."""
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Unsmoothed class probabilities of this decision (not in the JSON line)."""

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "probs"}
        for key in ("timestamp", "confidence", "raw_confidence"):
            row[key] = round(row[key], 4)
        row["latency_ms"] = round(row["latency_ms"], 2)
        return {"type": "decision", **row}
