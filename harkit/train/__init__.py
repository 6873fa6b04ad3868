"""Training: Lightning module + data modules, the trainer, run folders.

One recipe on one dataset split into one run folder. What is done with runs (evaluate,
split averaging, ablations, reproduce) is :mod:`harkit.experiments`, which imports this
package, never the reverse.

>>> from harkit.train import train, load_run
>>> train(load_recipe("fusion-gru"), DatasetConfig(root="data/ucf101", kind="ucf101"),
...       "runs/fusion", store="store")
>>> recipe, classes, model = load_run("runs/fusion")
"""

from harkit.train.data import (
    TrainData,
    carve_validation,
    check_feature_dim,
    prepare_data,
)
from harkit.train.loaders import ActionDataModule
from harkit.train.module import ActionModule
from harkit.train.run import FORMAT_VERSION, RunError, RunPaths, load_run, offline_recipe
from harkit.train.run_info import DataRecord, RunInfo
from harkit.train.trainer import TrainResult, train

__all__ = [
    "FORMAT_VERSION",
    "ActionDataModule",
    "ActionModule",
    "DataRecord",
    "RunError",
    "RunInfo",
    "RunPaths",
    "TrainData",
    "TrainResult",
    "carve_validation",
    "check_feature_dim",
    "load_run",
    "offline_recipe",
    "prepare_data",
    "train",
]
