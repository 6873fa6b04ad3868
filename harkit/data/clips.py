"""Clip datasets: decode, sample and transform videos of an index, skipping bad files.

A bad video never kills a long job: ``__getitem__`` returns a :class:`SkippedVideo` instead of
raising, :func:`collate_clips` moves those out of the batch, and the consumer hands them to a
:class:`SkipReport`, which logs each file once and keeps a JSON report on disk. The report
lives in the main process, so it works the same with any number of DataLoader workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
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
    "read_skip_report",
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


class EpochSeeded:
    """Training jitter drawn per item from ``(torch seed, epoch, item)``: a new draw every
    epoch in the main process too (where the torch seed never changes), the same draw for
    the same epoch after a resume. The training sampler calls :meth:`set_epoch`."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([torch.initial_seed() % 2**63, self.epoch, i])


class ClipDataset(EpochSeeded, Dataset):
    """Items of a :class:`VideoIndex` as transformed clips.

    Each item is a dict: ``video`` float ``(T, 3, S, S)`` (``(T, L, 3, S, S)`` for segment
    sampling; ``uint8 (T, 3, H, W)`` without a transform), ``mask`` bool ``(T,)`` / ``(T, L)``, ``label`` int, ``index`` int. Training
    sampling draws from a generator seeded by the worker's torch seed, the epoch and the item
    index (:class:`EpochSeeded`), so runs are reproducible and differ between epochs.
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
        rng = self.item_rng(i) if self.train else None
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


def _entry_line(path: str, reason: str) -> str:
    """One report entry as its line holds it: ``"path": "reason"`` (ASCII, one line)."""
    return json.dumps({path: reason})[1:-1]


def _render_report(entries: dict[str, str]) -> str:
    """A skip report in its line layout: ``{`` + the first entry, ``,`` + each next one, ``}``."""
    lines = [_entry_line(k, v) for k, v in entries.items()]
    if not lines:
        return "{}\n"
    return "{" + "\n,".join(lines) + "\n}\n"


def _check_entries(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("not a JSON object of video path: reason")
    return value


def read_skip_report(path: str | Path) -> tuple[dict[str, str], str]:
    """``(entries, torn)``: the ``path: reason`` entries of the report at ``path`` and the text
    of a torn last line (``""`` when none).

    A report is a JSON object (harkit's own layout holds one entry per line; any JSON object
    of strings, e.g. an older harkit's indented report, reads as well). A job killed while
    writing an entry leaves a line cut off: when every line before it is a whole entry, the
    cut line is left out and returned as ``torn``. Anything else unreadable raises
    ``ValueError`` (``UnicodeDecodeError``, ``json.JSONDecodeError``, or not an object of
    strings)."""
    return _parse_report(Path(path).read_bytes())


def _parse_report(data: bytes) -> tuple[dict[str, str], str]:
    try:
        return _check_entries(json.loads(data.decode("utf-8"))), ""
    except ValueError as exc:
        problem = exc
    lines = data.split(b"\n")
    entries: dict[str, str] = {}
    try:
        if len(lines) < 2 or not lines[0].startswith(b"{"):
            raise ValueError
        for n, line in enumerate(lines[:-1]):
            lead = b"{" if n == 0 else b","
            if not line.startswith(lead):
                raise ValueError
            entries.update(_check_entries(json.loads(b"{" + line[1:] + b"}")))
    except ValueError:
        raise problem from None  # not a report cut off in its last line: say what json said
    return entries, lines[-1].decode("utf-8", "replace")


class SkipReport:
    """Unreadable videos met during a job: logged once each, kept on disk as they come.

    The file is a JSON object of ``video path: reason``, one entry per line::

        {"a/v1.avi": "cannot decode: ..."
        ,"b/v7.avi": "no frames"
        }

    Recording a video writes its line over the closing ``}`` (and a new ``}`` after it): the
    same small write whatever the report already holds (rewriting the whole file each time
    took 204 s for 13,320 failures). The line is written before :meth:`record` returns, so a
    killed job loses nothing; the fsync that also covers a power cut runs at most once per
    :attr:`SYNC_SECONDS` and on :meth:`close`. Between two records the file is valid JSON; a
    job killed in the middle of a line leaves it cut off, and reading leaves that line out
    with a warning (:func:`read_skip_report`; :func:`harkit.data.jobs.open_skip_report` then
    mends the file). Several processes may record into one report: each write takes a lock.
    Reports written by an older harkit (indented JSON) are read as they are and rewritten in
    this layout before the first new entry.
    """

    SYNC_SECONDS = 1.0

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, str] = {}
        self.torn = ""
        """The cut-off last line left out when the report was read (``""``: none)."""
        self._fd: int | None = None
        self._synced = True
        self._last_sync = 0.0
        if self.path and self.path.is_file():
            self.entries, self.torn = read_skip_report(self.path)
            if self.torn:
                log.warning(
                    "%s: its last line was cut off (a job killed while writing it) and is "
                    "left out: %r",
                    self.path,
                    self.torn[:200],
                )

    def record(self, path: str | Path, reason: str) -> None:
        key = str(path)
        if key in self.entries:
            return
        said = reason if reason.startswith(key) else f"{key}: {reason}"  # errors name the file
        log.warning("skipping unreadable video %s", said)
        if self.path:
            self._append(_entry_line(key, reason))
        self.entries[key] = reason

    def record_batch(self, batch: dict[str, Any]) -> None:
        for skipped in batch.get("skipped", ()):
            self.record(skipped.path, skipped.reason)

    def __len__(self) -> int:
        return len(self.entries)

    def rewrite(self) -> None:
        """Write the whole report again (atomically, fsynced), in the line layout."""
        if self.path is None:
            return
        self._release()
        atomic_write_text(self.path, _render_report(self.entries))

    def sync(self) -> None:
        """fsync what was recorded (done at most every :attr:`SYNC_SECONDS` anyway)."""
        if self._fd is not None and not self._synced:
            _datasync(self._fd)
            self._synced, self._last_sync = True, time.monotonic()

    def close(self) -> None:
        """fsync and close the file (it is opened again by the next :meth:`record`)."""
        self._release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing left to do
            self._release()

    def __getstate__(self) -> dict[str, Any]:  # a copy opens the file itself
        return {**self.__dict__, "_fd": None, "_synced": True}

    def _release(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> int:
        """The report's file, open for writing and in the line layout (one check per open: a
        report in another layout, or holding entries this object lacks, is rewritten)."""
        assert self.path is not None
        if self._fd is not None:
            return self._fd
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        try:
            found, torn = _parse_report(data)
        except ValueError:  # missing, or damaged meanwhile: this object's entries stand
            found, torn = {}, "?"
        merged = {**found, **self.entries}
        if torn or merged != found or data != _render_report(found).encode():
            self.entries = merged
            atomic_write_text(self.path, _render_report(merged))
        self._fd = os.open(self.path, os.O_RDWR)
        self._synced = True
        return self._fd

    def _append(self, line: str) -> None:
        for _ in range(8):  # another process may swap or mend the file meanwhile: again
            fd = self._open()
            with _locked(fd):
                size = os.fstat(fd).st_size
                tail = os.pread(fd, 3, max(size - 3, 0))
                if not _same_file(fd, self.path):
                    at = -1  # replaced since opened: open the new one
                elif size == 3 and tail == b"{}\n":
                    at, text = 1, line + "\n}\n"
                elif size >= 4 and tail.endswith(b"}\n"):
                    at, text = size - 2, "," + line + "\n}\n"
                else:
                    at = -1  # cut off by a killed writer: opening it again mends it
                if at >= 0:
                    os.pwrite(fd, text.encode("ascii"), at)
                    self._synced = False
            if at < 0:
                self._release()
                continue
            if time.monotonic() - self._last_sync >= self.SYNC_SECONDS:
                self.sync()
            return
        raise OSError(f"{self.path}: could not append to the skip report (replaced repeatedly)")


def _same_file(fd: int, path: Path | None) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path) if path else None
    except OSError:
        return False
    return b is not None and (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """An exclusive lock on ``fd`` (``flock``; nothing where there is none)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _datasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)
