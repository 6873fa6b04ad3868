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
>>> harkit.list_heads()                               # head.type values; register_head adds
>>> harkit.fit("synthetic-gru", "videos/manifest.csv", "runs/demo", store="features")
>>> harkit.evaluate_run("runs/demo").clip.top1
>>> harkit.recognize("runs/demo", "clip.mp4").format()  # 'Class: ..., Confidence: 0.98'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from harkit._lazy import lazy_exports, validated

if TYPE_CHECKING:  # the lazy names, for type checkers and IDEs
    # argument types too: @validated evaluates them on a function's first call
    from pydantic import Field
    from torch import nn

    from harkit.arguments import (
        DatasetArg,
        Device,
        EvalDataset,
        Overrides,
        PathArg,
        RecipeArg,
        RunFolder,
        VideoArg,
    )
    from harkit.backbones import create_backbone, get_backbone_spec, list_backbones
    from harkit.config import ConfigError
    from harkit.data.datasets import DatasetConfig
    from harkit.errors import HarkitError
    from harkit.experiments import ablate, evaluate_splits, reproduce
    from harkit.experiments.evaluate import EvalResult
    from harkit.features import FeatureStore, extract_features
    from harkit.infer.recognizer import Prediction, Recognizer
    from harkit.models.recipe import Recipe, list_recipes, load_recipe
    from harkit.models.registry import HeadConfigBase, list_heads, register_head
    from harkit.synth import SynthConfig, render_dataset
    from harkit.train import TrainResult, load_run

__version__ = "0.1.0"

_EXPORTS = {
    "HarkitError": "harkit.errors",
    "ConfigError": "harkit.config",
    # data: datasets and harkit's own synthetic videos
    "DatasetConfig": "harkit.data.datasets",
    "SynthConfig": "harkit.synth.config",
    "render_dataset": "harkit.synth.dataset",
    # backbones (timm: list_models / create_model; torchvision: get_model)
    "list_backbones": "harkit.backbones",
    "get_backbone_spec": "harkit.backbones",
    "create_backbone": "harkit.backbones",
    # recipes and whole models
    "Recipe": "harkit.models.recipe",
    "list_recipes": "harkit.models.recipe",
    "load_recipe": "harkit.models.recipe",
    # heads by name (``head.type``), user heads included
    "HeadConfigBase": "harkit.models.registry",
    "list_heads": "harkit.models.registry",
    "register_head": "harkit.models.registry",
    # features
    "extract_features": "harkit.features",
    "FeatureStore": "harkit.features",
    # training (fit, below), evaluation, experiments
    "load_run": "harkit.train",
    "evaluate_splits": "harkit.experiments",
    "ablate": "harkit.experiments",
    "reproduce": "harkit.experiments",
    # inference
    "Recognizer": "harkit.infer.recognizer",
    "Prediction": "harkit.infer.recognizer",
}

# the lazy names, __version__, and the functions defined below
__all__ = [
    "ConfigError",
    "DatasetConfig",
    "FeatureStore",
    "HarkitError",
    "HeadConfigBase",
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
    "list_heads",
    "list_recipes",
    "load_recipe",
    "load_run",
    "recognize",
    "register_head",
    "render_dataset",
    "reproduce",
    "train_and_evaluate",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@validated
def create_model(
    recipe: RecipeArg,
    num_classes: Annotated[int, Field(ge=2, le=100_000)],  # more is a typo, not a dataset
    *,
    overrides: Overrides = (),
    pretrained: bool = False,
) -> nn.Module:
    """The whole model of a recipe (backbone + head, or the end-to-end network), untrained.

    ``recipe``: a built-in name (:func:`list_recipes`), a YAML path, or a :class:`Recipe`;
    ``overrides``: ``key=value`` recipe changes (a list, or one string for one change).
    ``pretrained=False`` (as in timm) starts the backbones from random weights and downloads
    nothing; ``True`` loads the recipe's weights.
    """
    from harkit.models.builder import build_model
    from harkit.train.run import offline_recipe

    resolved = _recipe(recipe, overrides)
    return build_model(resolved if pretrained else offline_recipe(resolved), num_classes).eval()


def _recipe(recipe: str | Path | Recipe, overrides: Sequence[str]) -> Recipe:
    from harkit.config import ConfigError
    from harkit.models.recipe import Recipe, load_recipe

    if not isinstance(recipe, Recipe):
        return load_recipe(recipe, list(overrides))
    if overrides:
        raise ConfigError("overrides apply to a recipe name or file; got a Recipe object")
    return recipe


def _dataset(dataset: Any) -> Any:
    """A video folder or CSV manifest path as a :class:`DatasetConfig`; others as given."""
    from harkit.data.datasets import DatasetConfig

    return DatasetConfig(root=dataset) if isinstance(dataset, Path) else dataset


@validated
def fit(
    recipe: RecipeArg,
    dataset: DatasetArg,
    run_dir: RunFolder,
    *,
    overrides: Overrides = (),
    store: PathArg | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``recipe`` (name, YAML path or :class:`Recipe`, with ``overrides``) on
    ``dataset`` (a :class:`DatasetConfig`, or a video folder / CSV manifest path) into the run
    folder ``run_dir``; returns the run folder and its ``run.json`` (``.info``, a
    :class:`~harkit.train.RunInfo`). Features-mode recipes need ``store``,
    the feature store folder. ``options`` go to :func:`harkit.train.train` (``devices``,
    ``accelerator``, ``max_epochs``, ``precision``, ``progress``, ``resume``, ...).
    """
    from harkit.train.run import resume_recipe
    from harkit.train.trainer import train

    resolved, config = _recipe(recipe, overrides), _dataset(dataset)
    if options.get("resume"):  # to the epochs the run records, as `harkit train --resume`
        resolved = resume_recipe(resolved, run_dir, list(overrides))
    return train(resolved, config, run_dir, store=store, **options)


@validated
def train_and_evaluate(
    recipe: RecipeArg,
    dataset: DatasetArg,
    run_dir: RunFolder,
    *,
    splits: Sequence[Annotated[int, Field(ge=1)]],
    overrides: Overrides = (),
    store: PathArg | None = None,
    clips: Annotated[int, Field(ge=1)] = 1,
    **options: Any,
) -> dict[str, Any]:
    """Train and evaluate each official split (``splits=[1, 2, 3]``) into ``RUN/split{k}/``
    and write ``RUN/splits.md/.json`` with the mean over splits; returns that summary.
    ``recipe``, ``dataset`` and ``overrides`` as in :func:`fit`; ``clips``: views per test
    video; ``options`` go to :func:`harkit.train.train`
    (:func:`harkit.experiments.splits.train_and_evaluate` underneath)."""
    from harkit.experiments.splits import train_and_evaluate as run_splits

    resolved, config = _recipe(recipe, overrides), _dataset(dataset)
    return run_splits(resolved, config, run_dir, splits=splits, store=store, clips=clips, **options)


@validated
def evaluate_run(
    run_dir: RunFolder,
    dataset: EvalDataset | None = None,
    *,
    clips: Annotated[int, Field(ge=1)] = 1,
    store: PathArg | None = None,
    **options: Any,
) -> EvalResult:
    """Evaluate the run folder's model on the test split (of the run's dataset, or
    ``dataset``: a :class:`DatasetConfig`, a video folder / CSV manifest path or a torch
    ``Dataset``) and write ``RUN/report/``: :func:`harkit.experiments.evaluate_run`
    (``options``: ``out_dir``, ``batch_size``, ``device``, ``precision``)."""
    from harkit.experiments import evaluate_run as evaluate

    return evaluate(run_dir, _dataset(dataset), clips=clips, store=store, **options)


@validated
def recognize(
    run: RunFolder,
    video: VideoArg,
    *,
    top_k: Annotated[int, Field(ge=1)] = 5,
    device: Device = "cpu",
) -> Prediction:
    """Label one video (file, frame folder or ``uint8 (N, H, W, 3)`` frames) with the trained
    run folder ``run``: ``Recognizer.from_run(run).predict(video)`` in one call.

    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, one this machine has. Arguments
    are checked before the run is loaded. For many videos build one :class:`Recognizer` and
    call ``predict`` / ``predict_many``: this loads the run each time.
    """
    from harkit.infer.recognizer import Recognizer

    return Recognizer.from_run(run, device=device).predict(video, top_k=top_k)
