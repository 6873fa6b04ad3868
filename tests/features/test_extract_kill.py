"""`kill -9` of `harkit extract` (its decode workers) or of any process iterating a DataLoader
built with `loader_worker_init` (the trainer's) takes the workers with it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harkit.data.jobs import die_with_parent, loader_worker_init
from tests.helpers.processes import job_env, kill_job_and_list_survivors

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# workers stuck in one long item: torch's own parent check only runs between items
SLOW_EXTRACT = """
import sys, time
from harkit.features import pipeline
def slow_load_clip(*args, **kwargs):
    time.sleep(300)
pipeline.load_clip = slow_load_clip
from harkit.cli import main as cli_main
sys.exit(cli_main.main(sys.argv[1:]))
"""
SLOW_LOADER = """
import time
from torch.utils.data import DataLoader, Dataset
from harkit.data.jobs import loader_worker_init
class Slow(Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        time.sleep(300)
        return i
for _ in DataLoader(Slow(), num_workers=2, worker_init_fn=loader_worker_init()):
    pass
"""


def _start(tmp_path: Path, body: str, *args: str) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=job_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_kill_9_of_extract_ends_its_decode_workers(tmp_path: Path, tiny_root: Path) -> None:
    proc = _start(
        tmp_path,
        SLOW_EXTRACT,
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
    workers, survivors = kill_job_and_list_survivors(proc, workers=2)
    assert len(workers) == 2
    assert survivors == [], f"decode workers {survivors} outlived the killed `harkit extract`"


@pytest.mark.slow
def test_kill_9_of_a_loader_owner_ends_its_workers(tmp_path: Path) -> None:
    workers, survivors = kill_job_and_list_survivors(_start(tmp_path, SLOW_LOADER), workers=2)
    assert len(workers) == 2
    assert survivors == [], f"DataLoader workers {survivors} outlived their killed parent"


def test_worker_whose_parent_is_already_gone_exits(tmp_path: Path) -> None:
    import multiprocessing

    # the parent died between fork and the initializer: the check ends the worker at once
    context = multiprocessing.get_context("fork")
    child = context.Process(target=die_with_parent, args=(999_999_999,))
    child.start()
    child.join(30)
    assert child.exitcode == 1
    init = loader_worker_init()  # picklable for spawn, bound to this process
    assert init.args[0] == os.getpid()  # type: ignore[attr-defined]
