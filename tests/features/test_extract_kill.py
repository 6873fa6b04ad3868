"""`kill -9` of `harkit extract` (its decode workers) or of any process iterating a DataLoader
built with `loader_worker_init` (the trainer's) takes the workers with it."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harkit.data.jobs import die_with_parent, loader_worker_init
from tests.helpers.processes import job_env, kill_job_and_list_survivors

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# workers stuck in one long item: torch's own parent check only runs between items
# The patch is module-level: forkserver and spawn workers import this script too.
SLOW_EXTRACT = """
import multiprocessing, os, sys, time
from harkit.features import pipeline
def slow_load_clip(*args, **kwargs):
    open(os.path.join(os.environ["BUSY"], str(os.getpid())), "w").close()
    time.sleep(300)
pipeline.load_clip = slow_load_clip
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    from harkit.cli import main as cli_main
    sys.exit(cli_main.main(sys.argv[2:]))
"""
SLOW_LOADER = """
import multiprocessing, os, sys, time
from torch.utils.data import DataLoader, Dataset
from harkit.data.jobs import loader_worker_init
class Slow(Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        open(os.path.join(os.environ["BUSY"], str(os.getpid())), "w").close()
        time.sleep(300)
        return i
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    for _ in DataLoader(Slow(), num_workers=2, worker_init_fn=loader_worker_init()):
        pass
"""
#: Python's defaults on Linux: fork up to 3.13, forkserver from 3.14 (its workers are the
#: fork server's children, which exits with the job).
START_METHODS = pytest.mark.parametrize("method", ["fork", "forkserver"])


def _processes(method: str) -> int:
    """What the job starts at least: 2 workers, and under forkserver the server and its
    resource tracker (each must die with the job)."""
    return 2 if method == "fork" else 4


def _busy(tmp_path: Path) -> Path:
    """Where each worker drops a file once in its slow item: a forkserver worker still
    importing torch cannot watch its parent yet, and exits only once it has."""
    folder = tmp_path / "busy"
    folder.mkdir(exist_ok=True)
    return folder


def _start(tmp_path: Path, body: str, method: str, *args: str) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script), method, *args],
        env={**job_env(), "BUSY": str(_busy(tmp_path))},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@START_METHODS
def test_kill_9_of_extract_ends_its_decode_workers(
    tmp_path: Path, tiny_root: Path, method: str
) -> None:
    proc = _start(
        tmp_path,
        SLOW_EXTRACT,
        method,
        "extract",
        str(tiny_root),
        "--store",
        str(tmp_path / "store"),
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--engine",
        "torch",
        "--sampling",
        "num_frames=4",
        "--workers",
        "2",
        "--no-progress",
    )
    workers, survivors = kill_job_and_list_survivors(
        proc, workers=_processes(method), busy=_busy(tmp_path)
    )
    assert len(workers) >= _processes(method)
    assert survivors == [], f"decode workers {survivors} outlived the killed `harkit extract`"


@pytest.mark.slow
@START_METHODS
def test_kill_9_of_a_loader_owner_ends_its_workers(tmp_path: Path, method: str) -> None:
    proc = _start(tmp_path, SLOW_LOADER, method)
    workers, survivors = kill_job_and_list_survivors(
        proc, workers=_processes(method), busy=_busy(tmp_path)
    )
    assert len(workers) >= _processes(method)
    assert survivors == [], f"DataLoader workers {survivors} outlived their killed parent"


def test_worker_whose_parent_is_already_gone_exits(tmp_path: Path) -> None:
    import multiprocessing

    # the parent died between fork and the initializer: the check ends the worker at once
    context = multiprocessing.get_context("fork")
    child = context.Process(target=die_with_parent, args=(999_999_999,))
    child.start()
    child.join(30)
    assert child.exitcode == 1
    pickle.dumps(loader_worker_init(rank=1))  # spawn and forkserver workers receive it pickled
