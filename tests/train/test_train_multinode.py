"""DDP across two "nodes": two torchrun agents on this machine (one process each, gloo), as
``torchrun --nnodes 2`` starts them on two machines sharing the run folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harkit.train import load_run
from harkit.train.run import read_run_info

REPO = Path(__file__).resolve().parents[2]
JOB = """
import sys
import torch
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import train
from tests.helpers.training import toy_data

torch.set_num_threads(1)
recipe = load_recipe("fusion-gru", [
    "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
    "head.hidden=[8]", "optim.epochs=2", "optim.batch_size=4", "optim.val_fraction=0",
])
data = toy_data(sum(feature_dims(recipe)), n_train=16, n_val=0, n_test=4)
train(recipe, data, sys.argv[1], accelerator="cpu", devices=1, num_nodes=2, progress=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="two local torchrun agents: Linux CI only")
def test_torchrun_two_nodes_train_one_run(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    run = tmp_path / "run"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
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
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(port),
            str(script),
            str(run),
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    # both replicas ended with the same weights: the gradients were all-reduced across nodes
    digests = sorted((run / "logs" / "replicas").glob("rank*.sha256"))
    assert [d.name for d in digests] == ["rank0.sha256", "rank1.sha256"]
    assert digests[0].read_text() == digests[1].read_text()
    info = read_run_info(run)
    # 16 items over 2 nodes at batch 4: 2 steps per epoch each, so 4 in 2 epochs (one node
    # alone would take 4 per epoch)
    assert info.global_step == 4 and info.num_nodes == 2
    load_run(run)  # weights and recipe written once, by global rank 0
