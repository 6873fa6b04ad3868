"""Evaluation helpers, and the boundary between training and experiments."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import harkit.train
from harkit.data.datasets import DatasetError
from harkit.experiments import predict, training_summary
from harkit.models.builder import build_model
from harkit.train.run import offline_recipe
from harkit.train.run_info import RunInfo


def test_predicting_nothing_is_an_error(small) -> None:
    with pytest.raises(DatasetError, match="nothing to evaluate"):
        predict(build_model(offline_recipe(small()), 2), [])


def test_training_summary_counts_epochs_from_one() -> None:
    def training_summary_of(info: dict) -> dict:
        return training_summary(RunInfo.model_validate(info))

    info = {
        "epochs_run": 5,
        "best_score": 0.5,
        "exported": {"checkpoint": "checkpoints/best.ckpt", "epoch": 2, "reason": "r"},
    }
    summary = training_summary_of(info)
    assert summary["epochs_trained"] == 5 and summary["val_acc"] == 0.5
    assert summary["checkpoint"] == {
        "which": "best",
        "file": "checkpoints/best.ckpt",
        "epoch": 3,
        "reason": "highest validation accuracy",
    }
    last = training_summary_of(
        {
            "exported": {
                "checkpoint": "checkpoints/last.ckpt",
                "epoch": 4,
                "reason": "last epoch: no validation",
            }
        }
    )
    assert last["checkpoint"]["which"] == "last" and last["checkpoint"]["epoch"] == 5
    assert last["checkpoint"]["reason"] == "last epoch: no validation"
    # this harkit's run.json counts from 1 in `epoch`, Lightning's index is `epoch_index`
    now = training_summary_of(
        {
            "exported": {
                "checkpoint": "checkpoints/best.ckpt",
                "epoch": 3,
                "epoch_index": 2,
                "reason": "r",
            }
        }
    )
    assert now["checkpoint"]["epoch"] == 3
    empty = training_summary_of({})  # an older run.json: nothing invented
    assert empty["epochs_trained"] is None and empty["checkpoint"]["which"] is None


def test_training_never_imports_experiments() -> None:
    folder = Path(harkit.train.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not any(n.startswith("harkit.experiments") for n in names), path
    for old in ("evaluate", "ablate", "info", "reproduce"):  # moved, no shims left behind
        assert importlib.util.find_spec(f"harkit.train.{old}") is None
