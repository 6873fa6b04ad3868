"""Helpers for jobs that walk a whole dataset (flow, feature extraction): rank sharding,
stable video ids, per-rank skip reports, progress bars and worker processes that die with
their parent.

Each rank of ``torchrun`` / SLURM takes a disjoint share of the videos; outputs are keyed by
the video's path relative to a common root, so every rank and every later run agree on names.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harkit.data.clips import SkipReport
from harkit.data.datasets import VideoIndex
from harkit.errors import HarkitError

__all__ = [
    "common_video_root",
    "die_with_parent",
    "loader_worker_init",
    "one_line",
    "open_skip_report",
    "progress_bar",
    "rank_report_path",
    "resolve_shard",
    "shard_indices",
    "video_id",
]

log = logging.getLogger(__name__)


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


#: Prefix of the id of a video outside the video root (an absolute path in a CSV manifest).
OUTSIDE_ROOT = "_abs"


def video_id(path: str | Path, video_root: str | Path) -> str:
    """A video's id: its path relative to ``video_root``, POSIX style; a video outside the
    root (a CSV may list absolute paths anywhere) is ``_abs/<its absolute path>``.

    Ids name files inside a store, so they stay relative; the absolute path keeps them unique
    and the same in every run whatever the root.
    """
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(video_root)).as_posix()
    except ValueError:
        drive, rest = os.path.splitdrive(absolute.as_posix())
        return f"{OUTSIDE_ROOT}/" + (drive.replace(":", "") + rest).lstrip("/")


def rank_report_path(root: str | Path, stem: str, rank: int = 0, world_size: int = 1) -> Path:
    """``root/<stem>.json``, or ``root/<stem>.rank<R>.json`` when several ranks write."""
    return Path(root) / (f"{stem}.json" if world_size == 1 else f"{stem}.rank{rank}.json")


def progress_bar(name: str, total: int, done: int, *, enabled: bool, rank: int) -> Any:
    """A tqdm bar (rate and ETA) over videos, labelled with the rank when there are several."""
    from tqdm.auto import tqdm

    desc = name if rank == 0 else f"{name} rank {rank}"
    return tqdm(total=total, initial=done, desc=desc, unit="video", disable=not enabled)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (pydantic and SQLite messages can span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def open_skip_report(
    path: str | Path, rebuild: Callable[[], Mapping[str, str]] | None = None
) -> SkipReport:
    """The skip report at ``path`` (see :class:`~harkit.data.clips.SkipReport`; new entries
    are appended, one line each). A report whose last line was cut off (a job killed while
    writing it) keeps its other entries, and the file is mended with a warning. One that is
    not a JSON object of ``path: reason`` (truncated in its first entry or hand-edited) is
    rebuilt with a warning, from ``rebuild()`` when given (e.g. the failed rows of a
    manifest), else empty: the job lists again what it skips."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise HarkitError(f"{path} is a folder, not a skip report; move it away and re-run")
    try:
        report = SkipReport(path)
        if report.torn:
            report.rewrite()
        return report
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        problem = one_line(exc)
    report = SkipReport(None)
    report.path, report.entries = path, dict(rebuild() if rebuild else {})
    log.warning(
        "%s was unreadable (%s); rebuilt it with %d entries", path, problem, len(report.entries)
    )
    report.rewrite()
    return report


# -- worker processes -----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL_S = 1.0


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return (
            libc.prctl(
                ctypes.c_int(_PR_SET_PDEATHSIG),
                ctypes.c_ulong(signal.SIGKILL),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
            == 0
        )
    except (OSError, AttributeError):  # no libc / no prctl symbol
        return False


def _watch(creator_pid: int, direct: bool) -> None:
    while os.getppid() == creator_pid if direct else _pid_exists(creator_pid):
        time.sleep(_WATCH_INTERVAL_S)
    os._exit(1)  # the creator is gone: nobody will ever read this worker's results


def die_with_parent(creator_pid: int | None = None) -> None:
    """Tie this worker process's life to ``creator_pid`` (default: the process that started
    the pool or DataLoader, :func:`starting_process_pid`); call it first in the worker.

    A pool or DataLoader worker blocked on its task queue outlives a parent killed with
    SIGKILL: nothing tells it, and it holds its memory for minutes. On Linux the kernel
    SIGKILLs the worker when its parent exits (``PR_SET_PDEATHSIG``; strictly, when the parent
    *thread* that started the worker exits, which for harkit's pools is the main thread).
    A forked worker's parent is the creator. A forkserver worker's parent is the fork server
    (Python 3.14's default start method on Linux), which exits with the creator; a daemon
    thread then also polls the creator's pid, as it does where ``prctl`` is missing. A creator
    that died before this ran (between the start and here) ends the worker at once.
    """
    if creator_pid is None:
        creator_pid = starting_process_pid()
    direct = os.getppid() == creator_pid
    kernel = sys.platform.startswith("linux") and _set_parent_death_signal()
    if not (kernel and direct):
        threading.Thread(
            target=_watch, args=(creator_pid, direct), name="harkit-parent-watch", daemon=True
        ).start()
    if (os.getppid() != creator_pid) if direct else not _pid_exists(creator_pid):
        os._exit(1)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def starting_process_pid() -> int:
    """In a pool or DataLoader worker: the pid of the process that started it (iterated the
    loader). Its OS parent under fork; under forkserver or spawn the OS parent is the server."""
    parent = multiprocessing.parent_process()
    return os.getppid() if parent is None or parent.pid is None else parent.pid


def _loader_worker_init(worker_id: int, rank: int | None = None) -> None:
    die_with_parent()
    if rank is not None:
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank)


def loader_worker_init(rank: int | None = None) -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` that ties each worker's life to the process iterating
    the loader (see :func:`die_with_parent`), under any start method; picklable.

    With ``rank`` it also seeds the worker's torch / numpy / python RNGs from the loader's base
    seed, the worker id and ``rank``, as Lightning's ``seed_everything(workers=True)`` would
    (which it skips for a loader that has its own ``worker_init_fn``): DDP ranks' workers then
    draw different augmentations.
    """
    return functools.partial(_loader_worker_init, rank=rank)
