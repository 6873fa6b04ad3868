"""Run folders: the contract between training and everything downstream.

Layout (``RUN/``)::

    recipe.yaml            resolved recipe (save_config)
    classes.json           class names in label order
    model.safetensors      state_dict of build_model(recipe, num_classes), best checkpoint
    run.json               format_version, versions, mode, dims, dataset/split/counts/leakage,
                           best epoch + val acc, timestamps
    skipped.json           unreadable videos met while training (may be absent: none)
    logs/                  TensorBoard (logs/tensorboard) and CSV (logs/csv) loggers
    checkpoints/           Lightning best.ckpt and last.ckpt (resume)
    report/                written by evaluation

:func:`load_run` rebuilds the model from the folder alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harkit import __version__
from harkit.config import ConfigError, load_yaml, parse_config, save_config
from harkit.errors import HarkitError
from harkit.io import atomic_output, atomic_write_text
from harkit.models.recipe import Recipe

__all__ = [
    "FORMAT_VERSION",
    "RunError",
    "RunPaths",
    "load_run",
    "offline_recipe",
    "read_run_info",
    "save_weights",
    "write_run_info",
]

#: Bump when the files of a run folder change meaning; load_run refuses other versions.
FORMAT_VERSION = 1


class RunError(HarkitError):
    """A run folder is missing, incomplete or from an incompatible harkit version."""


@dataclass(frozen=True)
class RunPaths:
    """Every path of one run folder."""

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def classes(self) -> Path:
        return self.root / "classes.json"

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def info(self) -> Path:
        return self.root / "run.json"

    @property
    def skipped(self) -> Path:
        return self.root / "skipped.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best_ckpt(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def report(self) -> Path:
        return self.root / "report"


def offline_recipe(recipe: Recipe) -> Recipe:
    """A copy of ``recipe`` whose backbones start from random weights (no download).

    Used to rebuild a model whose weights come from a file anyway, and by ``harkit info``.
    """
    features = [s.model_copy(update={"weights": "none"}) for s in recipe.input.features]
    update: dict[str, Any] = {"input": recipe.input.model_copy(update={"features": features})}
    if recipe.network is not None:
        update["network"] = recipe.network.model_copy(update={"encoder_weights": "none"})
    return recipe.model_copy(update=update)


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model.state_dict()`` as safetensors, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "harkit": __version__})
    return Path(path)


def write_run_info(paths: RunPaths, info: dict[str, Any]) -> Path:
    """Write ``run.json`` with ``format_version`` and the harkit version filled in."""
    payload = {"format_version": FORMAT_VERSION, "harkit_version": __version__, **info}
    return atomic_write_text(paths.info, json.dumps(payload, indent=2, default=str) + "\n")


def read_run_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``run.json`` of a run folder, checked for a compatible ``format_version``."""
    paths = RunPaths(Path(path))
    if not paths.root.is_dir():
        raise RunError(f"{paths.root}: run folder not found")
    if not paths.info.is_file():
        raise RunError(f"{paths.root}: not a harkit run folder (no run.json); train one first")
    try:
        info = json.loads(paths.info.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{paths.info}: cannot read ({exc})") from exc
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise RunError(
            f"{paths.root}: run format {version!r} written by harkit "
            f"{info.get('harkit_version', '?')}; this harkit ({__version__}) reads format "
            f"{FORMAT_VERSION}. Retrain, or use the harkit version that wrote it"
        )
    return info


def write_recipe_and_classes(paths: RunPaths, recipe: Recipe, classes: list[str]) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(recipe, paths.recipe)
    atomic_write_text(paths.classes, json.dumps(list(classes), indent=1) + "\n")


def load_run(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[Recipe, list[str], nn.Module]:
    """``(recipe, classes, model)`` of a run folder; the model is in eval mode on ``device``.

    Raises :class:`RunError` for a missing folder, missing files, weights that do not fit the
    recipe, or a folder written by an incompatible harkit version.
    """
    from harkit.data.datasets import DatasetError, load_classes
    from harkit.models.builder import build_model

    paths = RunPaths(Path(path))
    read_run_info(paths.root)
    if not paths.recipe.is_file():
        raise RunError(f"{paths.root}: recipe.yaml is missing")
    try:
        recipe = parse_config(Recipe, load_yaml(paths.recipe), source=str(paths.recipe))
    except ConfigError as exc:
        raise RunError(
            f"{paths.recipe}: recipe does not validate with this harkit version ({__version__}): "
            f"{exc}"
        ) from exc
    try:
        classes = load_classes(paths.classes)
    except DatasetError as exc:
        raise RunError(str(exc)) from exc
    if not paths.weights.is_file():
        raise RunError(
            f"{paths.root}: model.safetensors is missing (training did not finish?); "
            "resume with --resume or train again"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model = build_model(offline_recipe(recipe), len(classes))
    try:
        state = load_file(str(paths.weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise RunError(f"{paths.weights}: weights do not fit recipe '{recipe.name}': {exc}") from exc
    return recipe, classes, model.to(device).eval()
