"""Incremental decoding of a unidirectional recurrent head: one step in, logits out.

**State reset policy**. A recurrent state fed frame by frame over an endless stream drifts
away from training, where clips have ``window`` steps. The default policy ``staggered`` keeps
two states, each reset every ``window`` steps and offset by half a window; the decision comes
from the one that has seen more steps, so after warm-up the head always looks at between
``window/2`` and ``window`` recent steps, like a training clip, at the cost of two head steps
per frame (still O(1); one batch-2 call where the head's state is all tensors). ``periodic``
resets one state every ``window`` steps (the context then collapses to one step after each
reset); ``none`` never resets (equal to the full forward over everything seen, used to check
the decoder).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from harkit.infer.errors import InferenceError

__all__ = ["IncrementalDecoder", "ResetPolicy"]

ResetPolicy = Literal["staggered", "periodic", "none"]


def _batch_dims(one: Any, two: Any) -> Any:
    """The batch axis of every leaf of a head state (from its batch-1 and batch-2 forms), or
    None when some leaf is not a tensor with exactly one batch axis."""
    if isinstance(one, dict) and isinstance(two, dict) and one.keys() == two.keys():
        dims = {k: _batch_dims(one[k], two[k]) for k in one}
        return None if any(d is None for d in dims.values()) else dims
    if isinstance(one, Tensor) and isinstance(two, Tensor) and one.dim() == two.dim():
        axes = [
            i for i, (a, b) in enumerate(zip(one.shape, two.shape, strict=True)) if (a, b) == (1, 2)
        ]
        return axes[0] if len(axes) == 1 else None
    return None


def _replace_row(state: Any, fresh: Any, dims: Any, row: int) -> Any:
    """``state`` (batch 2) with row ``row`` replaced by the batch-1 ``fresh``."""
    if isinstance(state, dict):
        return {k: _replace_row(state[k], fresh[k], dims[k], row) for k in state}
    other = state.narrow(dims, 1 - row, 1)
    return torch.cat((fresh, other) if row == 0 else (other, fresh), dim=dims)


class IncrementalDecoder:
    """Feeds one step at a time through ``head.step`` under a state reset policy (see the
    module docstring). ``push(x_t)`` takes ``(1, D)`` and returns the logits ``(C,)``."""

    def __init__(self, head: torch.nn.Module, window: int, policy: ResetPolicy = "staggered"):
        if policy not in ("staggered", "periodic", "none"):
            raise InferenceError(f"unknown reset policy '{policy}'")
        self.head = head
        self.window = max(1, int(window))
        self.policy = policy
        self.counts = [0, 0]
        self.steps = 0
        self.states: list[dict | None] = [head.init_state(1), None]
        # staggered: both states as one batch-2 state, row 1 starting at half a window
        self.dims = None
        if policy == "staggered" and self.window > 1:
            self.dims = _batch_dims(self.states[0], head.init_state(2))
        self.batched = head.init_state(2) if self.dims is not None else None

    def push(self, x_t: Tensor) -> Tensor:
        with torch.no_grad():
            if self.batched is not None:
                return self._push_batched(x_t)
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

    def _push_batched(self, x_t: Tensor) -> Tensor:
        """Both staggered states in one call; row 1 runs from the start but is reset (and
        only then counted) at half a window, so it matches the unbatched decoder."""
        if self.steps == self.window // 2:
            self._reset(1)
        logits, self.batched = self.head.step(x_t.expand(2, -1), self.batched)
        self.steps += 1
        self.counts[0] += 1
        if self.steps > self.window // 2:
            self.counts[1] += 1
        best = 0 if self.counts[0] >= self.counts[1] else 1
        for i in (0, 1):
            if self.counts[i] >= self.window:
                self._reset(i)
        return logits[best]

    def _reset(self, row: int) -> None:
        self.batched = _replace_row(self.batched, self.head.init_state(1), self.dims, row)
        self.counts[row] = 0
