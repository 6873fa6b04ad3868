"""Run folders: the contract between training and everything downstream.

Layout (``RUN/``)::

    recipe.yaml            resolved recipe (save_config)
    classes.json           class names in label order
    model.safetensors      state_dict of build_model(recipe, num_classes), best checkpoint
    run.json               format_version, versions, mode, dims, dataset/split/counts/leakage,
                           best epoch + val acc, timestamps (:class:`RunInfo`)
    skipped.json           unreadable videos met while training (may be absent: none)
    trained_videos.json    ids of the train + validation videos (evaluation refuses them)
    logs/                  TensorBoard (logs/tensorboard) and CSV (logs/csv) loggers
    checkpoints/           Lightning last.ckpt (every epoch, resume) and best.ckpt (best
                           val/acc; only with validation)
    report/                written by evaluation
    .lock                  held (flock) while ``harkit train`` writes the folder

:func:`load_run` rebuilds the model from the folder alone. Every file is read without running
code: JSON and plain YAML are validated, checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from torch import nn

from harkit import __version__
from harkit.config import ConfigError, load_yaml, parse_config, save_config
from harkit.errors import HarkitError
from harkit.io import atomic_output, atomic_write_text
from harkit.models.recipe import Recipe
from harkit.train.run_info import FORMAT_VERSION, READABLE_FORMATS, RunInfo

__all__ = [
    "FORMAT_VERSION",
    "RunError",
    "RunInfo",
    "RunPaths",
    "load_checkpoint",
    "load_run",
    "load_weights_only",
    "lock_run",
    "offline_recipe",
    "read_classes",
    "read_json",
    "read_recipe",
    "read_run_info",
    "save_weights",
    "write_run_info",
]


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
    def trained_videos(self) -> Path:
        return self.root / "trained_videos.json"

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

    @property
    def lock(self) -> Path:
        return self.root / ".lock"


@contextmanager
def lock_run(paths: RunPaths) -> Iterator[None]:
    """Hold an exclusive lock on ``RUN/.lock`` (creating the folder); a second holder is refused.

    An OS lock (filelock's flock), so the kernel drops it when the process dies: a killed run
    leaves no stale lock behind.
    """
    for folder in (paths.root, *paths.root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise RunError(f"{folder} is a file; a run folder needs a folder there")
            break
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(paths.lock, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunError(
            f"{paths.root}: another 'harkit train' is writing this run folder; wait for it "
            "to finish or pick another --run folder"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def read_json(path: Path, expected: type[dict] | type[list]) -> Any:
    """A JSON file harkit wrote, checked to hold a JSON object (``dict``) or array (``list``)."""
    kind = "object" if expected is dict else "array"
    fix = "it was not written by harkit or is damaged; restore it or train the run again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text at all
        raise RunError(f"{path}: not valid JSON ({_first_line(exc)}); {fix}") from None
    if not isinstance(data, expected):
        raise RunError(f"{path}: expected a JSON {kind}, found {type(data).__name__}; {fix}")
    return data


def load_weights_only(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, so unpickling
    cannot run code; anything else is a one-line :class:`RunError` naming the file."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for foreign objects, anything for junk
        what = (
            "holds objects other than tensors and plain values"
            if "weights only load failed" in str(exc).lower()
            else f"is unreadable ({_first_line(exc)})"
        )
        raise RunError(
            f"{path}: refusing to load this checkpoint: it {what}; delete it and train again"
        ) from None
    return ckpt


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint (:func:`load_weights_only`), checked to hold a ``state_dict`` of
    tensors, ``epoch`` and ``global_step``."""
    ckpt = load_weights_only(path)
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if (
        not isinstance(state, dict)
        or not all(isinstance(v, torch.Tensor) for v in state.values())
        or not all(isinstance(ckpt.get(k), int) for k in ("epoch", "global_step"))
    ):
        raise RunError(
            f"{path}: not a Lightning checkpoint (state_dict of tensors, epoch, "
            "global_step); delete it and train again"
        )
    return ckpt


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


def write_run_info(paths: RunPaths, info: RunInfo) -> Path:
    """Write ``run.json``, stamped with this format version and harkit version."""
    stamp = {"format_version": FORMAT_VERSION, "harkit_version": __version__}
    payload = {**stamp, **info.model_dump(mode="json"), **stamp}  # stamped, and first in the file
    return atomic_write_text(paths.info, json.dumps(payload, indent=2) + "\n")


def read_run_info(path: str | os.PathLike[str]) -> RunInfo:
    """``run.json`` of a run folder, checked for a compatible ``format_version`` and validated
    (a wrong type is a one-line :class:`RunError` naming the file and the key)."""
    paths = RunPaths(Path(path))
    if not paths.root.is_dir():
        raise RunError(f"{paths.root}: run folder not found")
    if not paths.info.is_file():
        raise RunError(_no_run_json(paths))
    data = read_json(paths.info, dict)
    version = data.get("format_version")
    if version not in READABLE_FORMATS:
        raise RunError(
            f"{paths.root}: run format {version!r} written by harkit "
            f"{data.get('harkit_version', '?')}; this harkit ({__version__}) reads format "
            f"{FORMAT_VERSION}. Retrain, or use the harkit version that wrote it"
        )
    # Format 1 differs in recipe.yaml only (see _recipe_from_format_1): run.json reads as is.
    try:
        return parse_config(RunInfo, data, source=str(paths.info))
    except ConfigError as exc:
        raise RunError(f"{exc}; restore it or train the run again") from None


def _no_run_json(paths: RunPaths) -> str:
    """Why ``RUN`` has no run.json, and what to do: resume an interrupted training, use the
    split runs of a ``harkit train --splits`` folder, or train one."""
    root = paths.root
    if paths.info.exists():
        return f"{paths.info} is not a file; move it away (run.json is written by training)"
    if paths.last_ckpt.is_file():
        recipe = paths.recipe if paths.recipe.is_file() else "RECIPE"
        return (
            f"{root}: training was interrupted (checkpoints/last.ckpt is there, run.json is "
            f"written when it ends); continue it with 'harkit train --recipe {recipe} "
            f"--dataset DATA --run {root} --resume' on the data (and --store) it trained on"
        )
    splits = sorted(
        int(p.name[5:])
        for p in root.glob("split*")
        if p.name[5:].isdigit() and (p / "run.json").is_file()
    )
    if splits:
        listed = ",".join(map(str, splits))
        return (
            f"{root}: not a harkit run folder (no run.json); it holds split runs: use --splits "
            f"{listed} (harkit evaluate {root} --splits {listed}), or one of them, e.g. "
            f"{root / f'split{splits[0]}'}"
        )
    return f"{root}: not a harkit run folder (no run.json); train one first"


def read_classes(paths: RunPaths) -> list[str]:
    """``classes.json``: a JSON array of distinct class names."""
    if not paths.classes.is_file():
        raise RunError(f"{paths.root}: classes.json is missing")
    classes = read_json(paths.classes, list)
    if not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise RunError(f"{paths.classes}: expected a JSON array of distinct class names")
    return classes


def read_recipe(paths: RunPaths, info: RunInfo | None = None) -> Recipe:
    """``recipe.yaml`` (plain YAML), validated with this harkit version; ``info``: the run's
    ``run.json`` when the caller has read it already (it says the recipe's format)."""
    if not paths.recipe.is_file():
        raise RunError(f"{paths.root}: recipe.yaml is missing")
    try:
        data = load_yaml(paths.recipe)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    version = info.format_version if info is not None else _format_version(paths)
    if isinstance(data, dict) and version == 1:
        data = _recipe_from_format_1(data)
    try:
        return parse_config(Recipe, data, source=str(paths.recipe))
    except ConfigError as exc:
        raise RunError(
            f"{paths.recipe}: recipe does not validate with this harkit version ({__version__}): "
            f"{exc}"
        ) from None


def _format_version(paths: RunPaths) -> int:
    # no run.json yet (an interrupted first training): this harkit wrote the recipe
    return read_run_info(paths.root).format_version if paths.info.is_file() else FORMAT_VERSION


def _recipe_from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 ``recipe.yaml`` as the model it built: format 1 saved every key of one
    head (network) config, and builders ignored those their type does not use, or replaced
    three values, now refused (see below)."""
    from harkit.models.registry import section_default, section_keys

    data = dict(data)
    for section in ("head", "network"):
        config = data.get(section)
        if not isinstance(config, dict):
            continue
        kind = config.get("type", section_default(section))
        keys = section_keys(section, kind)
        if keys is None:
            continue  # an unknown type: validation names it
        config = {k: v for k, v in config.items() if k in keys}
        # what format 1's builder built where it replaced a value (refused since)
        if section == "head" and kind == "mean" and config.get("fc") == []:
            config["fc"] = [256]
        if section == "head" and kind == "two_stream" and config.get("pooling") == "vote":
            config["pooling"] = "last"
        if section == "network" and kind == "small2d_gru" and config.get("rnn") == "none":
            config["rnn"] = "gru"
        data[section] = config
    return data


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
    from harkit.models.builder import build_model

    paths = RunPaths(Path(path))
    info = read_run_info(paths.root)
    recipe = read_recipe(paths, info)
    classes = read_classes(paths)
    if info.num_classes is not None and info.num_classes != len(classes):
        raise RunError(
            f"{paths.info}: num_classes is {info.num_classes} but {paths.classes.name} names "
            f"{len(classes)} classes; restore the run folder's files or train again"
        )
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
    except (SafetensorError, OSError) as exc:
        raise RunError(
            f"{paths.weights}: not a readable safetensors file ({_first_line(exc)}); "
            "train the run again"
        ) from None
    except RuntimeError as exc:
        raise RunError(
            f"{paths.weights}: weights do not fit recipe '{recipe.name}': "
            f"{' '.join(str(exc).split())}"
        ) from None
    return recipe, classes, model.to(device).eval()


def resume_recipe(
    recipe: Recipe, run_dir: str | os.PathLike[str], overrides: Sequence[str]
) -> Recipe:
    """The recipe a resume trains: without an ``optim.epochs`` override it continues to the
    epochs the run was trained for (RUN/recipe.yaml), not to the recipe's default: a run
    trained with ``--set optim.epochs=60`` resumes to 60. Any other difference is refused by
    :func:`~harkit.train.train`."""
    if any(o.partition("=")[0].strip() == "optim.epochs" for o in overrides):
        return recipe
    paths = RunPaths(Path(run_dir))
    if not paths.recipe.is_file():
        return recipe  # train() says there is nothing to resume
    epochs = read_recipe(paths).optim.epochs
    return recipe.model_copy(update={"optim": recipe.optim.model_copy(update={"epochs": epochs})})
