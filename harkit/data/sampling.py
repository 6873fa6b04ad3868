"""Frame sampling: video length -> frame indices (+ a validity mask).

Strategies (``SamplingConfig.strategy``):

* ``uniform``  ``num_frames`` indices spread linearly over the video (seed 003: 20).
* ``tsn``      the video cut into ``num_frames`` equal segments, one frame per segment: the
               segment centre for evaluation, a random offset inside it for training.
* ``stride``   every ``stride``-th frame ("frame jump", seed 002: 4), at most ``max_frames``.
* ``all``      every frame, at most ``max_frames``.
* ``segments`` non-overlapping segments of ``segment_length`` frames (seed 001: 20); the
               result is ``(T, L)`` and the last segment may be short.

Short videos follow one rule everywhere: when a fixed number of frames is asked for and the
video has fewer, the missing positions repeat the last real frame (keeping time order) and
the mask marks them ``False``. Heads use the mask (or the lengths) to ignore them.

Sampling is deterministic unless ``train=True``, where it draws from the ``rng`` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from harkit.config import StrictModel

__all__ = ["SampledIndices", "SamplingConfig", "sample_indices"]

Strategy = Literal["uniform", "tsn", "stride", "all", "segments"]


class SamplingConfig(StrictModel):
    """Which frames of a video a model sees."""

    # Upper bounds refuse absurd values before any allocation: one clip's frames are held
    # in memory together (10,000 frames of 320x240 RGB are 2.3 GB).
    strategy: Strategy = "uniform"
    num_frames: int = Field(default=16, ge=1, le=10_000)
    stride: int = Field(default=1, ge=1, le=10_000)
    max_frames: int | None = Field(default=None, ge=1, le=10_000)
    segment_length: int = Field(default=20, ge=1, le=1_000)
    max_segments: int | None = Field(default=None, ge=1, le=1_000)

    def describe(self) -> str:
        """A short, stable string; part of the feature-store key."""
        fields = {
            "uniform": ("num_frames",),
            "tsn": ("num_frames",),
            "stride": ("stride", "max_frames"),
            "all": ("max_frames",),
            "segments": ("segment_length", "max_segments"),
        }[self.strategy]
        return self.strategy + "".join(f"-{f}={getattr(self, f)}" for f in fields)


@dataclass(frozen=True)
class SampledIndices:
    """Frame indices, shape ``(T,)`` or ``(T, L)`` for segments, and a same-shape mask."""

    indices: np.ndarray
    mask: np.ndarray

    @property
    def length(self) -> int:
        """Number of valid time steps (segments count as valid if any frame is)."""
        valid = self.mask if self.mask.ndim == 1 else self.mask.any(axis=1)
        return int(valid.sum())


def _pad(indices: np.ndarray, size: int) -> SampledIndices:
    """Pad to ``size`` by repeating the last index; mask the padding."""
    real = len(indices)
    mask = np.arange(size) < real
    if real < size:
        indices = np.concatenate([indices, np.full(size - real, indices[-1], dtype=np.int64)])
    return SampledIndices(indices.astype(np.int64), mask)


def _segment_picks(
    num_frames: int, count: int, train: bool, rng: np.random.Generator | None
) -> np.ndarray:
    edges = np.linspace(0, num_frames, count + 1)
    starts, ends = edges[:-1], edges[1:]
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        picks = starts + rng.random(count) * (ends - starts)
    else:
        picks = (starts + ends) / 2
    return np.minimum(np.floor(picks).astype(np.int64), num_frames - 1)


def sample_indices(
    num_frames: int,
    config: SamplingConfig,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> SampledIndices:
    """Indices for a video of ``num_frames`` frames under ``config``."""
    if num_frames < 1:
        raise ValueError(f"cannot sample from a video with {num_frames} frames")
    strategy = config.strategy

    if strategy in ("uniform", "tsn"):
        want = config.num_frames
        if num_frames < want:
            return _pad(np.arange(num_frames), want)
        if strategy == "uniform":
            picks = np.linspace(0, num_frames - 1, want).round().astype(np.int64)
        else:
            picks = _segment_picks(num_frames, want, train, rng)
        return SampledIndices(picks, np.ones(want, dtype=bool))

    if strategy in ("stride", "all"):
        step = config.stride if strategy == "stride" else 1
        start = 0
        if train and step > 1:
            rng = rng if rng is not None else np.random.default_rng()
            start = int(rng.integers(0, min(step, num_frames)))
        stop = num_frames
        if config.max_frames is not None:  # allocate only the indices kept
            stop = min(stop, start + config.max_frames * step)
        picks = np.arange(start, stop, step, dtype=np.int64)
        return SampledIndices(picks, np.ones(len(picks), dtype=bool))

    # segments: T x L, last one may be short (masked, padded with its last frame)
    length = config.segment_length
    count = -(-num_frames // length)
    if config.max_segments is not None:
        count = min(count, config.max_segments)
    flat = np.arange(count * length, dtype=np.int64)
    mask = flat < num_frames
    flat = np.minimum(flat, num_frames - 1)
    return SampledIndices(flat.reshape(count, length), mask.reshape(count, length))
