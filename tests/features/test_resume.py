"""Real kill -9 mid-extraction then resume; 2-process torchrun sharding; the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harkit.data.datasets import DatasetConfig, load_index
from harkit.features import FeatureDataset, extract_features, feature_stores_for
from harkit.models.recipe import FeatureSource
from tests.helpers.features import FOUR, R18, tiny_dataset

REPO = Path(__file__).resolve().parents[2]
SLOW_PUT = """
import sys, time
from harkit.features import store as store_module
_put = store_module.FeatureStore.put
def slow_put(self, *args, **kwargs):  # widen the window in which the kill can land
    out = _put(self, *args, **kwargs)
    time.sleep(0.3)
    return out
store_module.FeatureStore.put = slow_put
"""
CLI = """
import sys
from harkit.cli import main as cli_main
sys.exit(cli_main.main(sys.argv[1:]))
"""
ARGS = [
    "--backbone",
    "resnet18",
    "--weights",
    "none",
    "--sampling",
    "num_frames=4",
    "--no-progress",
]


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _ok_rows(store: Path) -> int:
    db = store / "manifest.sqlite"
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM videos WHERE status='ok'").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path) -> None:
    root = tiny_dataset(tmp_path / "videos", classes=3, actors=4)  # 12 videos
    index = load_index(DatasetConfig(root=root))
    store_root = tmp_path / "store"
    (location,) = feature_stores_for([R18], FOUR, None, store_root)
    script = _script(tmp_path, "slow.py", SLOW_PUT + CLI)
    cmd = [
        sys.executable,
        str(script),
        "extract",
        str(root),
        "--store",
        str(store_root),
        *ARGS,
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _ok_rows(location.path) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _ok_rows(location.path)
    assert 3 <= done_before < len(index)

    report = extract_features(index, [R18], store_root, FOUR, progress=False, num_workers=0)
    store = location.open()
    assert report.existing == done_before
    assert report.extracted == len(index) - done_before  # finished videos are not redone
    assert store.counts() == {"ok": len(index), "failed": 0}
    assert store.verify() == []
    files = sorted(p.name for p in (store.path / "features").rglob("*") if p.is_file())
    assert len(files) == len(index) and not [f for f in files if not f.endswith(".mp4.npy")]
    dataset = FeatureDataset(index, [store])
    assert all(dataset[i]["video"].shape == (4, 512) for i in range(len(index)))


@pytest.mark.slow
def test_torchrun_two_ranks_fill_one_store(tmp_path: Path, tiny_root: Path) -> None:
    store_root = tmp_path / "store"
    script = _script(tmp_path, "cli.py", CLI)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        "extract",
        str(tiny_root),
        "--store",
        str(store_root),
        *ARGS,
        "--workers",
        "0",
        "--report",
        str(tmp_path / "report.json"),
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2" in done.stdout and "rank 1/2" in done.stdout
    index = load_index(DatasetConfig(root=tiny_root))
    (location,) = feature_stores_for([R18], FOUR, None, store_root)
    store = location.open()
    assert store.counts() == {"ok": len(index), "failed": 0}
    assert store.verify() == []
    # each rank did its own half: the per-rank report counts add up, nothing twice
    extracted = [
        int(line.split(": ")[2].split()[0])
        for line in done.stdout.splitlines()
        if line.startswith("rank ")
    ]
    assert sorted(extracted) == [len(index) // 2, len(index) - len(index) // 2]


def test_cli_extract_and_config_mismatch(tmp_path: Path, tiny_root: Path, monkeypatch, capsys):
    from harkit.cli import main as cli_main

    store = tmp_path / "store"
    argv = [
        "extract",
        str(tiny_root),
        "--store",
        str(store),
        "--backbone",
        "resnet18",
        "--backbone",
        "googlenet",
        "--weights",
        "none",
        "--sampling",
        "num_frames=2",
        "--workers",
        "0",
        "--no-progress",
        "--dtype",
        "fp32",
    ]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "6 extracted" in out and "rgb:googlenet:none:pooled" in out
    locations = feature_stores_for(
        [R18, FeatureSource(backbone="googlenet", weights="none")],
        FOUR.model_copy(update={"num_frames": 2}),
        None,
        store,
        dtype="float32",
    )
    assert all(loc.exists() for loc in locations)
    assert cli_main.main(["extract", str(tiny_root), "--store", str(store)]) == 2
    assert "--backbone" in capsys.readouterr().err
