"""Kill a harkit job with SIGKILL and see whether its worker processes outlive it (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def job_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # the name in (...) may hold spaces: skip it


def descendants(pid: int) -> list[int]:
    """Live processes started by ``pid``, its children's children included (forkserver and
    spawn workers are children of a server process, not of the job)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def kill_job_and_list_survivors(
    proc: subprocess.Popen,
    workers: int,
    *,
    busy: Path | None = None,
    start_s: float = 180.0,
    grace_s: float = 10.0,
) -> tuple[list[int], list[int]]:
    """Wait until ``proc`` has ``workers`` descendants (and, with ``busy``, until two workers
    have each dropped a file there: in their work, not still starting), SIGKILL it, then wait
    up to ``grace_s`` for every descendant to go (a fork server and its resource tracker
    too). Returns ``(descendants seen, survivors)``; survivors are killed afterwards so a
    failing test leaves nothing running."""
    deadline = time.monotonic() + start_s
    seen: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        seen = descendants(proc.pid)
        if len(seen) >= workers and (busy is None or len(list(busy.iterdir())) >= 2):
            break
        time.sleep(0.05)
    if proc.poll() is not None or len(seen) < workers:
        proc.kill()
        output = proc.communicate()[1] or b""
        raise AssertionError(
            f"job ended or never started {workers} workers: {output.decode()[-2000:]}"
        )
    time.sleep(0.5)  # let the workers get into their work
    seen = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in seen):
        time.sleep(0.05)
    survivors = [p for p in seen if alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return seen, survivors
