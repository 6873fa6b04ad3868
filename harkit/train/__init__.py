"""Training: Lightning module + data modules, run folders, evaluation, ablations.

>>> from harkit.train import train, load_run, evaluate_run
>>> train(load_recipe("fusion-gru"), DatasetConfig(root="data/ucf101", kind="ucf101"),
...       "runs/fusion", store="store")
>>> recipe, classes, model = load_run("runs/fusion")
"""

from harkit.train.ablate import Variant, ablate, grid_variants, parse_grid, recipe_variants
from harkit.train.data import (
    ActionDataModule,
    TrainData,
    carve_validation,
    check_feature_dim,
    prepare_data,
)
from harkit.train.evaluate import (
    EvalResult,
    Predictions,
    evaluate_predictions,
    evaluate_run,
    predict,
    train_and_evaluate,
)
from harkit.train.info import recipe_info
from harkit.train.module import ActionModule
from harkit.train.run import FORMAT_VERSION, RunError, RunPaths, load_run, offline_recipe
from harkit.train.trainer import TrainResult, train

__all__ = [
    "FORMAT_VERSION",
    "ActionDataModule",
    "ActionModule",
    "EvalResult",
    "Predictions",
    "RunError",
    "RunPaths",
    "TrainData",
    "TrainResult",
    "Variant",
    "ablate",
    "carve_validation",
    "check_feature_dim",
    "evaluate_predictions",
    "evaluate_run",
    "grid_variants",
    "load_run",
    "offline_recipe",
    "parse_grid",
    "predict",
    "prepare_data",
    "recipe_info",
    "recipe_variants",
    "train",
    "train_and_evaluate",
]
