"""Experiments: what is done with trained runs and with many of them.

Evaluate a run folder, train and evaluate each official split and average over them,
ablation grids, a paper's reproduction table, a recipe's summary. Built on
:mod:`harkit.train` (one training run) and :mod:`harkit.evaluate` (metrics and reports over
arrays); nothing in ``harkit.train`` imports this package.

>>> from harkit.experiments import evaluate_run, train_and_evaluate
>>> result = evaluate_run("runs/fusion")
>>> summary = train_and_evaluate(recipe, DatasetConfig(root="data/ucf101"), "runs/fusion",
...                              splits=[1, 2, 3])
"""

from harkit.experiments.ablate import Variant, ablate, grid_variants, parse_grid, recipe_variants
from harkit.experiments.evaluate import (
    EvalResult,
    Predictions,
    evaluate_predictions,
    evaluate_run,
    predict,
    training_summary,
)
from harkit.experiments.info import recipe_info
from harkit.experiments.reproduce import reproduce
from harkit.experiments.splits import evaluate_splits, split_dirs, train_and_evaluate

__all__ = [
    "EvalResult",
    "Predictions",
    "Variant",
    "ablate",
    "evaluate_predictions",
    "evaluate_run",
    "evaluate_splits",
    "grid_variants",
    "parse_grid",
    "predict",
    "recipe_info",
    "recipe_variants",
    "reproduce",
    "split_dirs",
    "train_and_evaluate",
    "training_summary",
]
