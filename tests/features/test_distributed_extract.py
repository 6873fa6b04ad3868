"""Extraction across "nodes": two local processes launched as two torchrun nodes, or as two
SLURM tasks, fill one store equal to a single-process extraction."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harkit.data.datasets import VideoIndex
from harkit.data.transforms import TransformConfig
from harkit.features import extract_features, feature_stores_for
from harkit.features.store import FeatureStore
from tests.helpers.features import FOUR, R18, SMALL
from tests.helpers.tolerances import FEATURE_RTOL

REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from harkit.cli import main; sys.exit(main.main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _features(store: FeatureStore) -> dict[str, np.ndarray]:
    return {row.video_id: store.load_row(row).astype(np.float32) for row in store.rows("ok")}


def _assert_same_store(got: FeatureStore, want: FeatureStore, precision: str) -> None:
    assert got.counts() == want.counts() and got.verify() == []
    a, b = _features(got), _features(want)
    assert sorted(a) == sorted(b)
    for vid in b:  # batches span videos, so a rank's batches differ from one process's
        err = np.linalg.norm(a[vid] - b[vid]) / np.linalg.norm(b[vid])
        assert err <= FEATURE_RTOL[precision], (vid, err)


def _single(index: VideoIndex, root: Path, transform: TransformConfig | None) -> FeatureStore:
    """The reference: one process extracts every video."""
    extract_features(
        index,
        [R18],
        root,
        FOUR,
        transform,
        dtype="float32",
        precision="fp32",
        num_workers=0,
        rank=0,
        world_size=1,
        progress=False,
    )
    return feature_stores_for([R18], FOUR, transform, root, dtype="float32")[0].open()


def test_slurm_tasks_shard_like_torchrun_ranks(
    tmp_path: Path, tiny_index: VideoIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srun -N2 harkit extract``: each task reads SLURM_PROCID / SLURM_NTASKS (no RANK)."""
    index = tiny_index
    single = _single(index, tmp_path / "single", SMALL)
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    extracted = []
    for task in (1, 0):
        monkeypatch.setenv("SLURM_PROCID", str(task))
        report = extract_features(
            index,
            [R18],
            tmp_path / "store",
            FOUR,
            SMALL,
            dtype="float32",
            precision="fp32",
            num_workers=0,
            progress=False,
        )
        assert (report.rank, report.world_size) == (task, 2)
        extracted.append(report.extracted)
    assert sorted(extracted) == [len(index) // 2, len(index) - len(index) // 2]
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path / "store", dtype="float32")
    _assert_same_store(location.open(), single, "fp32")
    # torchrun's RANK wins over SLURM's (srun launching torchrun sets both)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    again = extract_features(
        index, [R18], tmp_path / "store", FOUR, SMALL, dtype="float32", progress=False
    )
    assert (again.rank, again.world_size) == (0, 3) and again.extracted == 0


@pytest.mark.slow
@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_torchrun_two_nodes_fill_one_store(
    tmp_path: Path, tiny_root: Path, tiny_index: VideoIndex, rendezvous: str
) -> None:
    """Two torchrun agents as two nodes (one process each) on this machine, sharing the store
    folder as nodes share a network file system."""
    single = _single(tiny_index, tmp_path / "single", None)  # the CLI's default transform
    port = _free_port()
    if rendezvous == "c10d":
        launch = [
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{port}",
            "--rdzv-id",
            "harkit-test",
        ]
    else:
        launch = ["--master-addr", "127.0.0.1", "--master-port", str(port)]
    store_root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(var, None)
    procs = []
    for node in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--node-rank",
            str(node),
            "--nproc-per-node",
            "1",
            *launch,
            "--no-python",
            sys.executable,
            "-c",
            CLI,
            "extract",
            str(tiny_root),
            "--store",
            str(store_root),
            "--backbone",
            "resnet18",
            "--weights",
            "none",
            "--sampling",
            "num_frames=4",
            "--precision",
            "fp32",
            "--dtype",
            "fp32",
            "--workers",
            "0",
            "--no-progress",
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    text = "".join(out for out, _ in outputs)
    assert "rank 0/2" in text and "rank 1/2" in text
    (location,) = feature_stores_for([R18], FOUR, None, store_root, dtype="float32")
    _assert_same_store(location.open(), single, "fp32")
