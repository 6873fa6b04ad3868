"""Flow of only the pairs a sampling picks, as `harkit flow` would have stored them.

`harkit flow` writes one file per video with a pair per frame (pair ``k`` runs from frame
``k`` to ``k + 1``), and feature extraction samples the recipe's steps over those pairs.
:class:`SampledFlow` computes exactly the sampled pairs from a video's frames with the same
settings: grayscale frames resized with :func:`harkit.flow.extract.to_gray`, the same
:mod:`harkit.flow.methods` object, the same uint8 quantisation. So feature extraction without
flow files, ``predict``, ``stream`` and ``export`` all feed a flow stream what training saw,
at the cost of the sampled pairs only (16 pairs, not a few hundred, for a 16-step clip).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harkit.data.clips import FrameLookup, read_sampled
from harkit.data.sampling import SampledIndices, SamplingConfig, sample_indices
from harkit.data.video import VideoReadError
from harkit.errors import HarkitError
from harkit.flow.extract import FlowConfig, to_gray
from harkit.flow.methods import FlowMethod, get_flow_method
from harkit.flow.storage import quantize_flow

__all__ = ["SampledFlow", "TooFewFramesError", "load_clip_and_flow", "pair_frames"]

_CHUNK = 16  # pairs per method call, as harkit flow computes them (RAFT batches them)


class TooFewFramesError(HarkitError):
    """A video too short for optical flow (fewer than two frames to pair)."""


def pair_frames(num_frames: int, config: FlowConfig) -> np.ndarray:
    """Frame indices flow runs between, as ``harkit flow`` picks them: every frame, or the
    flow config's sampled frames (each once, in time order). Pair ``k``: ``[k] -> [k + 1]``."""
    if config.sampling is None:
        return np.arange(num_frames, dtype=np.int64)
    sampled = sample_indices(num_frames, config.sampling)
    return np.unique(sampled.indices.reshape(-1)[sampled.mask.reshape(-1)])


class SampledFlow:
    """Quantised flow of frames under a :class:`~harkit.flow.extract.FlowConfig`."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self.method: FlowMethod = get_flow_method(config.method, config.weights)

    def __reduce__(self) -> tuple[type[SampledFlow], tuple[FlowConfig]]:
        # OpenCV's flow objects do not pickle: a spawn or forkserver worker builds its own
        return SampledFlow, (self.config,)

    def gray(self, frame: np.ndarray) -> np.ndarray:
        """RGB ``uint8 (H, W, 3)`` -> the working grayscale frame."""
        return to_gray(frame, self.config.size)

    def pairs(self, grays: np.ndarray) -> np.ndarray:
        """Consecutive working frames ``(T, h, w)`` -> ``uint8 (T-1, h, w, 2)``."""
        out = []
        for start in range(0, len(grays) - 1, _CHUNK):
            chunk = grays[start : start + _CHUNK + 1]
            out.append(quantize_flow(self.method.pairs(chunk), self.config.bound))
        return np.concatenate(out)

    def _pairs(
        self, num_frames: int, sampling: SamplingConfig
    ) -> tuple[np.ndarray, SampledIndices]:
        frames_at = pair_frames(num_frames, self.config)
        if len(frames_at) < 2:
            raise TooFewFramesError(f"{len(frames_at)} frame(s); optical flow needs at least 2")
        return frames_at, sample_indices(len(frames_at) - 1, sampling)

    def needed(self, num_frames: int, sampling: SamplingConfig) -> np.ndarray:
        """Frame indices :meth:`sample` reads (sorted, unique)."""
        frames_at, sampled = self._pairs(num_frames, sampling)
        wanted = np.unique(sampled.indices)
        return np.unique(np.concatenate([frames_at[wanted], frames_at[wanted + 1]]))

    def sample(
        self,
        num_frames: int,
        sampling: SamplingConfig,
        read: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, SampledIndices]:
        """The flow steps of a video of ``num_frames`` frames, sampled like training's.

        ``read(indices)`` returns those RGB frames (sorted, unique indices). Returns
        ``uint8 (T, h, w, 2)`` (``(T, L, h, w, 2)`` for segments) and the sampling over pairs.
        """
        frames_at, sampled = self._pairs(num_frames, sampling)
        wanted = np.unique(sampled.indices)
        needed = self.needed(num_frames, sampling)
        rgb = read(needed)
        grays = {int(i): self.gray(f) for i, f in zip(needed, rgb, strict=True)}
        flows: dict[int, np.ndarray] = {}
        # runs of consecutive pairs share their frames: one method call per run
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        for run in np.split(wanted, breaks):
            stack = np.stack([grays[int(frames_at[k])] for k in range(run[0], run[-1] + 2)])
            flows.update(zip(run.tolist(), self.pairs(stack), strict=True))
        flat = np.stack([flows[int(k)] for k in sampled.indices.reshape(-1)])
        return flat.reshape(*sampled.indices.shape, *flat.shape[1:]), sampled


def load_clip_and_flow(
    path: str | Path, sampling: SamplingConfig, flow: SampledFlow, *, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """One decode of a video for both streams: its sampled RGB frames (as
    :func:`harkit.data.clips.load_clip` gives them) and its sampled flow steps (as
    :meth:`SampledFlow.sample` gives them). Unreadable or too short videos raise
    :class:`~harkit.data.video.VideoReadError`."""

    def sample(count: int, read: Callable[[np.ndarray], np.ndarray]):
        sampled = sample_indices(count, sampling)
        needed = np.unique(
            np.concatenate([sampled.indices.reshape(-1), flow.needed(count, sampling)])
        )
        frames_at = FrameLookup(needed, read(needed))
        steps, _ = flow.sample(count, sampling, frames_at)
        return frames_at(sampled.indices), steps

    try:
        return read_sampled(path, sample, backend=backend)
    except TooFewFramesError as exc:
        raise VideoReadError(path, str(exc)) from None
