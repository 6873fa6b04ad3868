"""harkit: human action recognition in video with hybrid CNN + RNN models.

This module is harkit's public Python API: the names in ``__all__`` are the stable surface
(subpackages hold more, and may change). ``import harkit`` stays light: each name loads its
module, and torch with it, on first use (PEP 562).

No name here is also a subpackage's: importing ``harkit.train`` binds ``harkit.train`` to
that package, so training from here is :func:`fit` (``harkit.train.train`` underneath).

>>> import harkit
>>> harkit.list_backbones()[:3]                       # the registry, like timm.list_models
>>> net = harkit.create_backbone("resnet18")           # one frame encoder
>>> model = harkit.create_model("synthetic-gru", num_classes=4)   # a whole recipe's model
>>> harkit.fit("synthetic-gru", "videos/manifest.csv", "runs/demo", store="features")
>>> harkit.evaluate_run("runs/demo").clip.top1
>>> harkit.recognize("runs/demo", "clip.mp4").format()  # 'Class: ..., Confidence: 0.98'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harkit._lazy import lazy_exports

if TYPE_CHECKING:  # the lazy names, for type checkers and IDEs
    import numpy as np
    from torch import nn

    from harkit.backbones import create_backbone, get_backbone_spec, list_backbones
    from harkit.data.datasets import DatasetConfig
    from harkit.data.synthetic import SynthConfig, render_dataset
    from harkit.errors import HarkitError
    from harkit.experiments import (
        ablate,
        evaluate_run,
        evaluate_splits,
        reproduce,
        train_and_evaluate,
    )
    from harkit.features import FeatureStore, extract_features
    from harkit.infer.recognizer import Prediction, Recognizer
    from harkit.models.recipe import Recipe, list_recipes, load_recipe
    from harkit.train import TrainResult, load_run

__version__ = "0.1.0"

_EXPORTS = {
    "HarkitError": "harkit.errors",
    # data: datasets and harkit's own synthetic videos
    "DatasetConfig": "harkit.data.datasets",
    "SynthConfig": "harkit.data.synthetic",
    "render_dataset": "harkit.data.synthetic",
    # backbones (timm: list_models / create_model; torchvision: get_model)
    "list_backbones": "harkit.backbones",
    "get_backbone_spec": "harkit.backbones",
    "create_backbone": "harkit.backbones",
    # recipes and whole models
    "Recipe": "harkit.models.recipe",
    "list_recipes": "harkit.models.recipe",
    "load_recipe": "harkit.models.recipe",
    # features
    "extract_features": "harkit.features",
    "FeatureStore": "harkit.features",
    # training (fit, below), evaluation, experiments
    "load_run": "harkit.train",
    "evaluate_run": "harkit.experiments",
    "train_and_evaluate": "harkit.experiments",
    "evaluate_splits": "harkit.experiments",
    "ablate": "harkit.experiments",
    "reproduce": "harkit.experiments",
    # inference
    "Recognizer": "harkit.infer.recognizer",
    "Prediction": "harkit.infer.recognizer",
}

# the lazy names, __version__, and the three functions defined below
__all__ = [
    "DatasetConfig",
    "FeatureStore",
    "HarkitError",
    "Prediction",
    "Recipe",
    "Recognizer",
    "SynthConfig",
    "__version__",
    "ablate",
    "create_backbone",
    "create_model",
    "evaluate_run",
    "evaluate_splits",
    "extract_features",
    "fit",
    "get_backbone_spec",
    "list_backbones",
    "list_recipes",
    "load_recipe",
    "load_run",
    "recognize",
    "render_dataset",
    "reproduce",
    "train_and_evaluate",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def create_model(
    recipe: str | os.PathLike[str] | Recipe,
    num_classes: int,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    pretrained: bool = False,
) -> nn.Module:
    """The whole model of a recipe (backbone + head, or the end-to-end network), untrained.

    ``recipe``: a built-in name (:func:`list_recipes`), a YAML path, or a :class:`Recipe`;
    ``overrides``: ``key=value`` recipe changes. ``pretrained=False`` (as in timm) starts the
    backbones from random weights and downloads nothing; ``True`` loads the recipe's weights.
    """
    from harkit.config import ConfigError
    from harkit.models.builder import build_model
    from harkit.train.run import offline_recipe

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    resolved = _recipe(recipe, overrides)
    return build_model(resolved if pretrained else offline_recipe(resolved), num_classes).eval()


def _recipe(
    recipe: str | os.PathLike[str] | Recipe, overrides: list[str] | tuple[str, ...]
) -> Recipe:
    from harkit.config import ConfigError
    from harkit.models.recipe import Recipe, load_recipe

    if isinstance(recipe, Recipe):
        if overrides:
            raise ConfigError("overrides apply to a recipe name or file; got a Recipe object")
        return recipe
    return load_recipe(recipe, list(overrides))


def fit(
    recipe: str | os.PathLike[str] | Recipe,
    dataset: str | os.PathLike[str] | DatasetConfig,
    run_dir: str | os.PathLike[str],
    *,
    overrides: list[str] | tuple[str, ...] = (),
    store: str | os.PathLike[str] | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``recipe`` (name, YAML path or :class:`Recipe`, with ``overrides``) on
    ``dataset`` (a :class:`DatasetConfig`, or a video folder / CSV manifest path) into the run
    folder ``run_dir``; returns ``run.json``'s fields. Features-mode recipes need ``store``,
    the feature store folder. ``options`` go to :func:`harkit.train.train` (``devices``,
    ``accelerator``, ``max_epochs``, ``precision``, ``progress``, ``resume``, ...).
    """
    from harkit.data.datasets import DatasetConfig
    from harkit.train.trainer import train

    config = dataset if isinstance(dataset, DatasetConfig) else DatasetConfig(root=Path(dataset))
    return train(_recipe(recipe, overrides), config, run_dir, store=store, **options)


def recognize(
    run: str | os.PathLike[str],
    video: str | os.PathLike[str] | np.ndarray,
    *,
    top_k: int = 5,
    device: str = "cpu",
) -> Prediction:
    """Label one video (file, frame folder or ``uint8 (N, H, W, 3)`` frames) with the trained
    run folder ``run``: ``Recognizer.from_run(run).predict(video)`` in one call.

    For many videos build one :class:`Recognizer` and call ``predict`` / ``predict_many``:
    this loads the run each time.
    """
    from harkit.infer.recognizer import Recognizer

    source: Any = video if not isinstance(video, os.PathLike) else Path(video)
    return Recognizer.from_run(Path(run), device=device).predict(source, top_k=top_k)
