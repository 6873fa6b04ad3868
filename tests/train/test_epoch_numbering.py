"""Every user-facing output counts epochs from 1: the train summary (run.json's
``exported.reason``), run.json's ``exported.epoch`` / ``best_epoch`` and the evaluation
report (report.md, metrics.json). Lightning's 0-based index is only ``epoch_index``."""

from __future__ import annotations

import json
from pathlib import Path

from harkit.experiments import evaluate_run
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import train
from tests.helpers.training import recipe_dim, small_recipe, toy_data


def test_train_summary_run_json_and_report_agree_on_the_epoch(tmp_path: Path) -> None:
    recipe = load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=[8]",
            "head.fc=[]",
            "optim.batch_size=8",
            "optim.epochs=3",
        ],
    )
    data = toy_data(sum(feature_dims(recipe)))
    run = tmp_path / "run"
    info = train(recipe, data, run, progress=False).info
    exported = info.exported
    n = exported.epoch
    assert 1 <= n <= info.epochs_run == 3
    assert exported.epoch_index == n - 1 and info.best_epoch == n
    # what `harkit train` prints after "exported checkpoints/best.ckpt: "
    assert exported.reason == f"best val/acc at epoch {n} of 3"
    assert json.loads((run / "run.json").read_text())["exported"] == exported.model_dump()
    evaluate_run(run, data.test)
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["training"]["checkpoint"]["epoch"] == n
    report = (run / "report" / "report.md").read_text()
    assert f"(checkpoints/best.ckpt, epoch {n} of 3)" in report


def test_the_progress_bar_counts_epochs_from_1(toy, tmp_path, capfd) -> None:
    """Lightning's bar showed 'Epoch 0' .. 'Epoch 1' for a 2-epoch run."""
    recipe = small_recipe("optim.epochs=2")
    train(recipe, toy(recipe_dim(recipe)), tmp_path / "run", progress=True)
    captured = capfd.readouterr()
    shown = captured.out + captured.err
    assert "Epoch 1/2" in shown and "Epoch 2/2" in shown
    assert "Epoch 0" not in shown
