"""Incremental decoding of a unidirectional recurrent head: one step in, logits out.

**State reset policy**. A recurrent state fed frame by frame over an endless stream drifts
away from training, where clips have ``window`` steps. The default policy ``staggered`` keeps
two states, each reset every ``window`` steps and offset by half a window; the decision comes
from the one that has seen more steps, so after warm-up the head always looks at between
``window/2`` and ``window`` recent steps, like a training clip, at the cost of two head steps
per frame (still O(1)). ``periodic`` resets one state every ``window`` steps (the context then
collapses to one step after each reset); ``none`` never resets (equal to the full forward over
everything seen, used to check the decoder).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from harkit.infer.errors import InferenceError

__all__ = ["IncrementalDecoder", "ResetPolicy"]

ResetPolicy = Literal["staggered", "periodic", "none"]


class IncrementalDecoder:
    """Feeds one step at a time through ``head.step`` under a state reset policy (see the
    module docstring). ``push(x_t)`` takes ``(1, D)`` and returns the logits ``(C,)``."""

    def __init__(self, head: torch.nn.Module, window: int, policy: ResetPolicy = "staggered"):
        if policy not in ("staggered", "periodic", "none"):
            raise InferenceError(f"unknown reset policy '{policy}'")
        self.head = head
        self.window = max(1, int(window))
        self.policy = policy
        self.states: list[dict | None] = [head.init_state(1), None]
        self.counts = [0, 0]
        self.steps = 0

    def push(self, x_t: Tensor) -> Tensor:
        with torch.no_grad():
            if self.policy == "staggered" and self.steps == self.window // 2 and self.window > 1:
                self.states[1] = self.head.init_state(1)  # the second, offset state starts
            outputs: list[Tensor | None] = [None, None]
            for i, state in enumerate(self.states):
                if state is None:
                    continue
                outputs[i], self.states[i] = self.head.step(x_t, state)
                self.counts[i] += 1
            self.steps += 1
            best = 0 if outputs[1] is None or self.counts[0] >= self.counts[1] else 1
            logits = outputs[best]
            assert logits is not None
            if self.policy != "none":
                for i, state in enumerate(self.states):
                    if state is not None and self.counts[i] >= self.window:
                        self.states[i], self.counts[i] = self.head.init_state(1), 0
            return logits[0]
