"""Helpers for jobs that walk a whole dataset (flow, feature extraction): rank sharding,
stable video ids, per-rank skip reports and progress bars.

Each rank of ``torchrun`` / SLURM takes a disjoint share of the videos; outputs are keyed by
the video's path relative to a common root, so every rank and every later run agree on names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harkit.data.datasets import VideoIndex
from harkit.errors import HarkitError

__all__ = [
    "common_video_root",
    "progress_bar",
    "rank_report_path",
    "resolve_shard",
    "shard_indices",
    "video_id",
]


def resolve_shard(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``, defaulting to the ``RANK``/``WORLD_SIZE`` env vars (torchrun)."""
    try:
        rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
        world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    except ValueError as exc:
        raise HarkitError(f"RANK / WORLD_SIZE must be integers ({exc})") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise HarkitError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def shard_indices(count: int, rank: int, world_size: int) -> list[int]:
    """The item positions rank ``rank`` of ``world_size`` works on: ``i % world_size == rank``."""
    return list(range(rank, count, world_size))


def common_video_root(index: VideoIndex) -> Path:
    """The deepest folder holding every video of ``index``."""
    if not len(index):
        raise HarkitError(f"{index.name}: the index has no videos")
    parents = {os.path.abspath(item.path.parent) for item in index}
    return Path(os.path.commonpath(sorted(parents)))


def video_id(path: str | Path, video_root: str | Path) -> str:
    """A video's id: its path relative to ``video_root``, POSIX style."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(video_root)).as_posix()
    except ValueError:
        raise HarkitError(f"{path} is not under the video root {video_root}") from None


def rank_report_path(root: str | Path, stem: str, rank: int = 0, world_size: int = 1) -> Path:
    """``root/<stem>.json``, or ``root/<stem>.rank<R>.json`` when several ranks write."""
    return Path(root) / (f"{stem}.json" if world_size == 1 else f"{stem}.rank{rank}.json")


def progress_bar(name: str, total: int, done: int, *, enabled: bool, rank: int) -> Any:
    """A tqdm bar (rate and ETA) over videos, labelled with the rank when there are several."""
    from tqdm.auto import tqdm

    desc = name if rank == 0 else f"{name} rank {rank}"
    return tqdm(total=total, initial=done, desc=desc, unit="video", disable=not enabled)
