"""`kill -9` of `harkit flow` takes its pool workers with it (they used to block for minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harkit.synth import write_video
from tests.helpers.flow import moving_frames
from tests.helpers.processes import job_env, kill_job_and_list_survivors


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_flow_ends_its_workers(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for k in range(4):  # TV-L1 at 128 px: seconds per video, so the workers are busy
        write_video(root / "move" / f"v{k}.mp4", moving_frames(24, 64, 64, 1.5 + k), fps=10)
    cmd = [
        sys.executable,
        "-m",
        "harkit.cli.main",
        "flow",
        str(root),
        "--out",
        str(tmp_path / "flow"),
        "--method",
        "tvl1",
        "--size",
        "128",
        "--workers",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=job_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers, survivors = kill_job_and_list_survivors(proc, workers=2)
    assert len(workers) == 2
    assert survivors == [], f"workers {survivors} outlived the killed `harkit flow`"
