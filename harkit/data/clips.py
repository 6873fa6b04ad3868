"""Clip datasets: decode, sample and transform videos of an index, skipping bad files.

A bad video never kills a long job: ``__getitem__`` returns a :class:`SkippedVideo` instead of
raising, :func:`collate_clips` moves those out of the batch, and the consumer hands them to a
:class:`SkipReport`, which logs each file once and keeps a JSON report on disk. The report
lives in the main process, so it works the same with any number of DataLoader workers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from harkit.data.datasets import VideoIndex
from harkit.data.sampling import SampledIndices, SamplingConfig, sample_indices
from harkit.data.transforms import clip_to_tensor
from harkit.data.video import FrameCountError, VideoReadError, get_reader
from harkit.io import atomic_write_text

__all__ = [
    "ClipDataset",
    "FrameLookup",
    "SkipReport",
    "SkippedVideo",
    "collate_clips",
    "load_clip",
    "out_of_memory_reason",
    "read_sampled",
]

T = TypeVar("T")

log = logging.getLogger(__name__)


class SkippedVideo(NamedTuple):
    """Stands in for an item whose video could not be read.

    A named tuple, not a frozen dataclass: Lightning moves batches to the device with
    ``apply_to_collection``, which rebuilds tuples but refuses frozen dataclasses.
    """

    index: int
    path: str
    reason: str


def load_clip(
    path: str | Path,
    sampling: SamplingConfig,
    *,
    backend: str = "auto",
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, SampledIndices]:
    """Decode the sampled frames of one video: ``uint8 (T, H, W, 3)`` or ``(T, L, H, W, 3)``
    (see :func:`read_sampled`)."""

    def sample(num_frames: int, read: Callable[[np.ndarray], np.ndarray]):
        sampled = sample_indices(num_frames, sampling, train=train, rng=rng)
        frames = read(sampled.indices.reshape(-1))
        return frames.reshape(*sampled.indices.shape, *frames.shape[1:]), sampled

    return read_sampled(path, sample, backend=backend)


def read_sampled(
    path: str | Path,
    sample: Callable[[int, Callable[[np.ndarray], np.ndarray]], T],
    *,
    backend: str = "auto",
) -> T:
    """``sample(num_frames, read)`` on one video: it picks frame indices from the video's
    length and decodes them with ``read(indices)`` (sorted, unique indices for one decode).

    When the header over-counts frames, ``sample`` runs again with the counted length (a
    count past :func:`~harkit.data.video.max_frames` is counted before sampling, so index
    arrays are never sized from a header's claim). An unreadable video, one without frames,
    or one that runs out of memory raises :class:`VideoReadError`.
    """
    try:
        reader = get_reader(backend, path)
        num_frames = reader.info(path).num_frames
        for _ in range(2):
            if num_frames < 1:
                raise VideoReadError(path, "no frames could be decoded")
            try:
                return sample(num_frames, lambda indices: reader.read_frames(path, indices))
            except FrameCountError as exc:
                num_frames = exc.actual
    except MemoryError as exc:
        raise VideoReadError(path, out_of_memory_reason(exc)) from None
    raise VideoReadError(path, "frame count changed between two decodes")


class FrameLookup:
    """Frames decoded at ``indices``, looked up by video frame index (any index shape)."""

    def __init__(self, indices: np.ndarray, frames: np.ndarray) -> None:
        self.position = {int(i): k for k, i in enumerate(indices)}
        self.frames = frames

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        flat = self.frames[[self.position[int(i)] for i in indices.reshape(-1)]]
        return flat.reshape(*indices.shape, *flat.shape[1:])


def out_of_memory_reason(exc: MemoryError) -> str:
    """The skip reason for a video that did not fit in memory (numpy names the size)."""
    detail = str(exc).strip()
    return "ran out of memory reading it" + (f" ({detail})" if detail else "")


class ClipDataset(Dataset):
    """Items of a :class:`VideoIndex` as transformed clips.

    Each item is a dict: ``video`` float ``(T, 3, S, S)`` (``(T, L, 3, S, S)`` for segment
    sampling; ``uint8 (T, 3, H, W)`` without a transform), ``mask`` bool ``(T,)`` / ``(T, L)``, ``label`` int, ``index`` int. Training
    sampling draws from a generator seeded by the worker's torch seed and the item index, so
    runs are reproducible under ``lightning.seed_everything`` and differ between epochs.
    """

    def __init__(
        self,
        index: VideoIndex,
        sampling: SamplingConfig,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
        *,
        train: bool = False,
        backend: str = "auto",
    ) -> None:
        self.index = index
        self.sampling = sampling
        self.transform = transform
        self.train = train
        self.backend = backend

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedVideo:
        item = self.index[i]
        rng = np.random.default_rng([torch.initial_seed() % 2**63, i]) if self.train else None
        try:
            frames, sampled = load_clip(
                item.path, self.sampling, backend=self.backend, train=self.train, rng=rng
            )
            flat = frames.reshape(-1, *frames.shape[-3:])
            video = self.transform(flat) if self.transform else clip_to_tensor(flat)
        except VideoReadError as exc:
            return SkippedVideo(i, str(item.path), exc.reason)
        except MemoryError as exc:  # the transform of a huge clip: skip it, not the job
            return SkippedVideo(i, str(item.path), out_of_memory_reason(exc))
        return {
            "video": video.reshape(*sampled.indices.shape, *video.shape[1:]),
            "mask": torch.from_numpy(sampled.mask),
            "label": self.index.class_index(item.label),
            "index": i,
        }


def collate_clips(batch: Sequence[dict[str, Any] | SkippedVideo]) -> dict[str, Any]:
    """Stack good items; bad ones go to ``batch['skipped']``. Variable ``T`` is padded."""
    good = [b for b in batch if not isinstance(b, SkippedVideo)]
    skipped = [b for b in batch if isinstance(b, SkippedVideo)]
    out: dict[str, Any] = {"skipped": skipped}
    if not good:
        return out
    video = pad_sequence([b["video"] for b in good], batch_first=True)
    mask = pad_sequence([b["mask"] for b in good], batch_first=True)  # padding is False
    valid = mask if mask.ndim == 2 else mask.any(dim=2)
    out.update(
        video=video,
        mask=mask,
        lengths=valid.sum(dim=1),
        label=torch.tensor([b["label"] for b in good]),
        index=torch.tensor([b["index"] for b in good]),
    )
    return out


class SkipReport:
    """Unreadable videos met during a job: logged once each, saved as JSON on every change."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, str] = {}
        if self.path and self.path.is_file():
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))

    def record(self, path: str | Path, reason: str) -> None:
        key = str(path)
        if key in self.entries:
            return
        self.entries[key] = reason
        log.warning("skipping unreadable video %s: %s", key, reason)
        if self.path:
            atomic_write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True))

    def record_batch(self, batch: dict[str, Any]) -> None:
        for skipped in batch.get("skipped", ()):
            self.record(skipped.path, skipped.reason)

    def __len__(self) -> int:
        return len(self.entries)
