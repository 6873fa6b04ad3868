"""DDP on two CPU processes (gloo): the replicas end with identical weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import load_run, train


@pytest.mark.skipif(sys.platform != "linux", reason="ddp_fork needs fork")
def test_two_process_ddp_keeps_replicas_identical(toy, tmp_path: Path) -> None:
    recipe = load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=[8]",
            "optim.epochs=2",
            "optim.batch_size=4",
            "optim.val_fraction=0",
        ],
    )
    data = toy(sum(feature_dims(recipe)), n_train=16, n_val=0, n_test=4)
    # ddp_fork: Lightning forks the two ranks itself (the 'ddp' script launcher would re-run
    # pytest); both use gloo on CPU like any multi-process CPU run.
    info = train(
        recipe,
        data,
        tmp_path / "run",
        accelerator="cpu",
        devices=2,
        strategy="ddp_fork",
        progress=False,
    ).info
    digests = sorted((tmp_path / "run" / "logs" / "replicas").glob("rank*.sha256"))
    assert [d.name for d in digests] == ["rank0.sha256", "rank1.sha256"]
    assert digests[0].read_text() == digests[1].read_text()
    # 16 items over 2 ranks at batch 4: 2 steps per epoch on each rank.
    assert info.global_step == 4 and info.devices == 2
    load_run(tmp_path / "run")
