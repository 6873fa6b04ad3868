"""Flow extraction: videos -> per-video flow files, resumable, over processes and cluster ranks.

Flow runs between consecutive *sampled* frames (all frames by default), on grayscale frames
resized so the shorter side is ``size`` (256, the I3D convention; 224 crops are cut later).
One video is one task of a process pool; a cluster splits the index by rank (item ``i`` goes
to rank ``i % world_size``; ``RANK``/``WORLD_SIZE`` from torchrun are the defaults), so ranks
never touch the same file. A finished file is never recomputed unless it was damaged since
(truncated: recomputed with a warning), and a video that cannot be read is recorded in
``flow_skipped[.rankR].json`` under the output folder and passed over. Pool workers die with
the process that started them, even on ``kill -9``.

``flow_config.json`` in the output folder records the settings and the video root; running
again with other settings into the same folder is refused (``overwrite=True`` recomputes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import PositiveFloat, PositiveInt, field_validator

from harkit.config import StrictModel, atomic_write_text, parse_config
from harkit.data.clips import load_clip
from harkit.data.datasets import VideoIndex
from harkit.data.jobs import (
    common_video_root,
    die_with_parent,
    one_line,
    open_skip_report,
    progress_bar,
    rank_report_path,
    resolve_shard,
    shard_indices,
)
from harkit.data.sampling import SamplingConfig
from harkit.data.video import VideoReadError, get_reader
from harkit.errors import HarkitError
from harkit.flow.methods import FLOW_METHODS, get_flow_method
from harkit.flow.storage import (
    DEFAULT_BOUND,
    check_flow_file,
    flow_file_path,
    quantize_flow,
    save_flow,
)
from harkit.io import read_json_object

__all__ = [
    "CONFIG_FILE",
    "FlowConfig",
    "FlowSummary",
    "compute_dataset_flow",
    "flow_settings",
    "skip_report_path",
    "stored_video_root",
    "to_gray",
    "video_flow",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "flow_config.json"
_CHUNK = 16  # pairs computed (and batched, for RAFT) at a time, then quantised


class FlowConfig(StrictModel):
    """How flow is computed and stored."""

    method: str = "tvl1"
    """A name in ``harkit.flow.FLOW_METHODS``: tvl1, farneback, dis, dis-fast, raft-small, ..."""
    size: PositiveInt | None = 256
    """Shorter side of the working frames in pixels; ``None`` keeps the video's own size."""
    sampling: SamplingConfig | None = None
    """Frames between which flow runs (consecutive sampled frames); ``None`` = every frame."""
    bound: PositiveFloat = DEFAULT_BOUND
    """Displacements are clipped to ±bound pixels before the uint8 quantisation."""
    weights: Path | None = None
    """A local RAFT weights file (RAFT methods only)."""

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {value!r}; choose from {list(FLOW_METHODS)}")
        return value


@dataclass
class FlowSummary:
    """What one call of :func:`compute_dataset_flow` did on this rank."""

    rank: int
    world_size: int
    videos: int
    computed: int
    existing: int
    skipped: int
    pairs: int
    seconds: float
    skip_report: Path
    recomputed: int = 0
    """Files found damaged and computed again (counted in ``computed``)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "skip_report": str(self.skip_report)}


def working_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """``(H, W)`` with the shorter side scaled to ``size`` (aspect kept)."""
    if size is None:
        return height, width
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_gray(frame: np.ndarray, size: int | None = None) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB -> ``uint8`` grayscale with the shorter side at ``size``."""
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    height, width = working_shape(*gray.shape, size)
    if (height, width) != gray.shape:
        shrink = height < gray.shape[0]
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (width, height), interpolation=interp)
    return gray


def _sampled_frames(
    path: Path, sampling: SamplingConfig | None, backend: str
) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, RGB frame)`` in time order, each index once."""
    if sampling is None:
        yield from enumerate(get_reader(backend, path).iter_frames(path))
        return
    frames, sampled = load_clip(path, sampling, backend=backend)
    flat_idx = sampled.indices.reshape(-1)
    flat_frames = frames.reshape(-1, *frames.shape[-3:])
    # padding repeats frames (mask False) and segments can overlap nothing: keep unique, sorted
    keep: dict[int, int] = {}
    for pos, (i, valid) in enumerate(zip(flat_idx, sampled.mask.reshape(-1), strict=True)):
        if valid and int(i) not in keep:
            keep[int(i)] = pos
    for i in sorted(keep):
        yield i, flat_frames[keep[i]]


def video_flow(
    path: str | Path, config: FlowConfig | None = None, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Quantised flow of one video: ``uint8 (P, H, W, 2)`` and the ``int64 (P+1,)`` frame indices.

    Raises :class:`VideoReadError` for an unreadable video or one with fewer than 2 frames.
    """
    config = config or FlowConfig()
    path = Path(path)
    method = get_flow_method(config.method, config.weights)
    indices: list[int] = []
    chunks: list[np.ndarray] = []
    window: list[np.ndarray] = []
    for i, frame in _sampled_frames(path, config.sampling, backend):
        indices.append(i)
        window.append(to_gray(frame, config.size))
        if len(window) == _CHUNK + 1:
            chunks.append(quantize_flow(method.pairs(np.stack(window)), config.bound))
            window = window[-1:]
    if len(indices) < 2:
        raise VideoReadError(path, f"{len(indices)} frame(s) decoded; flow needs at least 2")
    if len(window) > 1:
        chunks.append(quantize_flow(method.pairs(np.stack(window)), config.bound))
    return np.concatenate(chunks), np.asarray(indices, dtype=np.int64)


def skip_report_path(out_root: str | Path, rank: int = 0, world_size: int = 1) -> Path:
    """``flow_skipped.json``, or ``flow_skipped.rank<R>.json`` when several ranks write."""
    return rank_report_path(out_root, "flow_skipped", rank, world_size)


def _read_stamp(flow_root: Path) -> dict[str, Any] | None:
    """``flow_config.json`` of ``flow_root`` (``None`` when absent); unreadable: one line."""
    path = flow_root / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        stamp = read_json_object(path)
        if not isinstance(stamp.get("video_root"), str):
            raise ValueError("no video_root")
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise HarkitError(
            f"{path} is not a readable flow config ({one_line(exc)}); recompute the folder "
            f"{flow_root} with `harkit flow --overwrite` (or delete it)"
        ) from None
    return stamp


def stored_video_root(flow_root: str | Path) -> Path | None:
    """The video root a flow folder was computed with (``None`` without ``flow_config.json``)."""
    stamp = _read_stamp(Path(flow_root))
    return Path(stamp["video_root"]) if stamp else None


def flow_settings(flow_root: str | Path) -> dict[str, Any] | None:
    """How the flow in ``flow_root`` was computed (its ``flow_config.json`` without the video
    root), or ``None`` for a folder without one."""
    stamp = _read_stamp(Path(flow_root))
    return {k: v for k, v in stamp.items() if k != "video_root"} if stamp else None


def _check_stamp(out_root: Path, stamp: dict[str, Any], overwrite: bool) -> None:
    path = out_root / CONFIG_FILE
    text = json.dumps(stamp, indent=1, sort_keys=True) + "\n"
    if path.is_file() and not overwrite:
        old = _read_stamp(out_root) or {}
        if old != stamp:
            changed = sorted(k for k in set(old) | set(stamp) if old.get(k) != stamp.get(k))
            raise HarkitError(
                f"{out_root} holds flow computed with other settings ({', '.join(changed)} "
                f"differ, see {path}); use another folder or overwrite"
            )
        return
    atomic_write_text(path, text)


def _init_worker(spawned: bool) -> None:
    die_with_parent()  # a killed `harkit flow` must not leave workers computing
    if not spawned:
        return  # forked: see _single_threaded_opencv
    import cv2
    import torch

    # one OpenCV/torch thread per process: the pool already fills the cores
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """OpenCV at one thread while forked workers start, restored afterwards.

    A forked child must not touch the thread pool it inherited (its threads do not exist
    there): calling ``cv2.setNumThreads`` in the child hung in ``pthread_cond_destroy``.
    Shrinking the pool in the parent before the fork leaves children nothing to tear down.
    """
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _flow_task(
    position: int, video: str, target: str, config: FlowConfig, backend: str
) -> tuple[int, int, str | None]:
    """Compute and save one video's flow: ``(position, pairs, error reason or None)``."""
    import cv2  # only for its error type; the methods import it where they run

    try:
        flow, indices = video_flow(video, config, backend)
    except VideoReadError as exc:
        return position, 0, exc.reason
    except (MemoryError, cv2.error) as exc:  # one video too big for the method: skip it
        return position, 0, f"flow computation failed ({' '.join(str(exc).split())})"
    save_flow(target, flow, indices, config.method, config.bound)
    return position, len(flow), None


def compute_dataset_flow(
    index: VideoIndex,
    out_root: str | Path,
    method: str = "tvl1",
    *,
    size: int | None = 256,
    sampling: SamplingConfig | dict[str, Any] | None = None,
    bound: float = DEFAULT_BOUND,
    weights: str | Path | None = None,
    backend: str = "auto",
    video_root: str | Path | None = None,
    num_workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> FlowSummary:
    """Compute flow files for this rank's share of ``index`` under ``out_root``.

    ``num_workers`` > 0 runs one video per task in that many processes (0: in this process).
    ``video_root`` (default: the deepest folder holding every video) is the part of each video
    path that ``out_root`` replaces. Returns what was done; bad videos are in the skip report.
    """
    config = parse_config(
        FlowConfig,
        {"method": method, "size": size, "sampling": sampling, "bound": bound, "weights": weights},
        source="flow settings",
    )
    if num_workers < 0:
        raise HarkitError(f"num_workers must be >= 0, got {num_workers}")
    rank, world_size = resolve_shard(rank, world_size)
    out_root = Path(out_root)
    root = Path(os.path.abspath(video_root)) if video_root else common_video_root(index)
    stamp = {**config.model_dump(mode="json"), "video_root": str(root)}
    for folder in (out_root, *out_root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise HarkitError(
                    f"{folder} is a file, not a folder; flow output needs a folder there "
                    "(move the file away or choose another --out)"
                )
            break
    out_root.mkdir(parents=True, exist_ok=True)
    _check_stamp(out_root, stamp, overwrite)
    # skipped videos have no file and are tried again on every run: an empty rebuild refills
    report = open_skip_report(skip_report_path(out_root, rank, world_size))

    positions = shard_indices(len(index), rank, world_size)
    todo: list[tuple[int, str, str]] = []
    existing = recomputed = 0
    for i in positions:
        target = flow_file_path(index[i].path, root, out_root)
        if target.is_file() and not overwrite:
            problem = check_flow_file(target)
            if problem is None:
                existing += 1
                continue
            log.warning("flow file %s %s: recomputing it", target, problem)
            recomputed += 1
        todo.append((i, str(index[i].path), str(target)))

    start = time.perf_counter()
    pairs = computed = skipped = 0
    bar = progress_bar("flow", len(positions), existing, enabled=progress, rank=rank)
    try:
        for position, count, reason in _run(todo, config, backend, num_workers):
            if reason is None:
                computed += 1
                pairs += count
            else:
                skipped += 1
                report.record(index[position].path, reason)
            bar.update(1)
            bar.set_postfix(pairs_per_s=f"{pairs / max(time.perf_counter() - start, 1e-9):.1f}")
    finally:
        bar.close()
    summary = FlowSummary(
        rank,
        world_size,
        len(positions),
        computed,
        existing,
        skipped,
        pairs,
        time.perf_counter() - start,
        report.path or Path(),
        recomputed,
    )
    log.info(
        "flow rank %d/%d: %d videos, %d computed (%d pairs; %d recomputed as damaged), "
        "%d already done, %d skipped",
        rank,
        world_size,
        summary.videos,
        computed,
        pairs,
        recomputed,
        existing,
        skipped,
    )
    return summary


def _run(
    todo: list[tuple[int, str, str]], config: FlowConfig, backend: str, num_workers: int
) -> Iterator[tuple[int, int, str | None]]:
    if num_workers == 0 or len(todo) <= 1:
        for position, video, target in todo:
            yield _flow_task(position, video, target, config, backend)
        return
    # fork starts workers instantly (importing torch anew takes seconds); RAFT may hold CUDA,
    # which a forked child cannot use, so it spawns
    spawn = config.method.startswith("raft") or sys.platform != "linux"
    context = multiprocessing.get_context("spawn" if spawn else "fork")
    workers = min(num_workers, len(todo))
    threads = contextlib.nullcontext() if spawn else _single_threaded_opencv()
    with (
        threads,
        ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(spawn,)
        ) as pool,
    ):
        futures = [pool.submit(_flow_task, *job, config, backend) for job in todo]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
