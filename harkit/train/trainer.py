"""``train()``: one recipe on one dataset split into a run folder (Lightning Trainer)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from pydantic import Field, InstanceOf

from harkit._lazy import validated
from harkit.arguments import PathArg
from harkit.config import save_config
from harkit.data.datasets import DatasetConfig, DatasetError, resolve_kind
from harkit.data.jobs import open_skip_report
from harkit.errors import HarkitError
from harkit.io import atomic_write_text
from harkit.models.networks import count_parameters
from harkit.models.recipe import Recipe
from harkit.train.callbacks import (
    AtomicCheckpointIO,
    EpochProgressBar,
    ReplicaDigest,
    RngCheckpoint,
)
from harkit.train.data import (
    TrainData,
    _is_first_process,
    check_feature_dim,
    prepare_data,
)
from harkit.train.loaders import ActionDataModule
from harkit.train.memory import check_model_fits
from harkit.train.module import ActionModule
from harkit.train.run import (
    RunError,
    RunPaths,
    load_checkpoint,
    lock_run,
    read_classes,
    read_recipe,
    read_run_info,
    save_weights,
    write_recipe_and_classes,
    write_run_info,
)
from harkit.train.run_info import DataRecord, ExportedCheckpoint, RunInfo

__all__ = [
    "TrainResult",
    "lightning_precision",
    "train",
]

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def lightning_precision(precision: str, accelerator: str) -> str:
    """The recipe's precision as Lightning spells it. fp16 autocast is a GPU feature: on
    CPU ``16-mixed`` runs as ``bf16-mixed``."""
    mapped = {"32": "32-true", "bf16": "bf16-mixed"}.get(precision, precision)
    if mapped == "16-mixed" and accelerator == "cpu":
        log.warning("16-mixed precision needs a GPU; using bf16-mixed on CPU")
        mapped = "bf16-mixed"
    return mapped


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: the run folder and its ``run.json``."""

    run_dir: Path
    info: RunInfo | None
    """None in the processes of a distributed run other than the first, which alone writes
    the run folder."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


#: Recipe keys a resume may change: more epochs extend a run (``--set optim.epochs=N``).
RESUMABLE_KEYS = frozenset({"optim.epochs"})


def _check_same_recipe(paths: RunPaths, recipe: Recipe) -> None:
    """Refuse a resume whose recipe differs from the saved one, naming each dotted key."""
    saved = _flatten(read_recipe(paths).model_dump(mode="json"))
    given = _flatten(recipe.model_dump(mode="json"))
    unset = object()
    changes = [
        f"{key}: {json.dumps(saved.get(key, unset), default=lambda _: '<unset>')} -> "
        f"{json.dumps(given.get(key, unset), default=lambda _: '<unset>')}"
        for key in {**saved, **given}
        if key not in RESUMABLE_KEYS and saved.get(key, unset) != given.get(key, unset)
    ]
    if changes:
        raise RunError(
            f"{paths.recipe}: --resume needs the recipe the run was trained with; keys that "
            f"differ (saved -> given): {', '.join(changes)}. Resume without those --set "
            "overrides, or train into another --run folder"
        )


def _check_epochs_to_resume(paths: RunPaths, recipe: Recipe, max_epochs: int | None) -> None:
    """Refuse a resume that asks for fewer epochs than ``last.ckpt`` has already run (Lightning
    would fail on it only after the run folder was rewritten), naming both numbers."""
    done = load_checkpoint(paths.last_ckpt)["epoch"] + 1  # last.ckpt: end of every epoch
    target = max_epochs or recipe.optim.epochs
    if target >= done:
        return
    asked = f"max_epochs={max_epochs}" if max_epochs else f"optim.epochs={target}"
    saved = read_recipe(paths).optim.epochs
    raise RunError(
        f"{paths.root}: cannot resume with {asked}: the run has already trained {done} epochs "
        f"(checkpoints/last.ckpt; its recipe.yaml says optim.epochs={saved}); to extend it set "
        f"optim.epochs to {done} or more (--set optim.epochs=N)"
    )


def _val_best(ckpt: dict[str, Any]) -> float | None:
    """``best_model_score`` of the checkpoint's val/acc ModelCheckpoint state."""
    for key, state in ckpt.get("callbacks", {}).items():
        if (
            str(key).startswith("ModelCheckpoint")
            and isinstance(state, dict)
            and state.get("monitor") == "val/acc"
            and state.get("best_model_score") is not None
        ):
            return float(state["best_model_score"])
    return None


def _eval_modules_are_frozen_backbones(module: torch.nn.Module) -> bool:
    """True when every module in eval mode belongs to a frozen backbone."""
    from harkit.backbones.module import Backbone

    frozen = {
        id(m) for b in module.modules() if isinstance(b, Backbone) and b.frozen for m in b.modules()
    }
    return all(id(m) in frozen for m in module.modules() if not m.training)


def _flow_settings(recipe: Recipe, store: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """How the flow the run's flow features came from was computed (recorded in the store by
    ``harkit extract``: the flow files' settings, or those of the flow it computed), so
    inference computes the same flow."""
    if store is None or not any(s.stream == "flow" for s in recipe.input.features):
        return None
    from harkit.features.dataset import feature_stores_for
    from harkit.features.flow_settings import read_flow_settings

    for location in feature_stores_for(recipe, None, None, Path(store)):
        if location.source.stream == "flow":
            return read_flow_settings(location.path)
    return None


@validated
def train(
    recipe: InstanceOf[Recipe],
    dataset: InstanceOf[DatasetConfig] | InstanceOf[TrainData],
    run_dir: PathArg,
    *,
    store: PathArg | None = None,
    devices: int | str | Sequence[int] = 1,
    num_nodes: Annotated[int, Field(ge=1)] = 1,
    accelerator: str = "auto",
    strategy: str | None = None,
    resume: bool = False,
    max_epochs: Annotated[int, Field(ge=1)] | None = None,
    precision: str | None = None,
    progress: bool = True,
    callbacks: Sequence[InstanceOf[Callback]] = (),
) -> TrainResult:
    """Train ``recipe`` on ``dataset`` (a config, or prepared :class:`TrainData`) into
    ``run_dir`` and write the run folder (see :mod:`harkit.train.run`).

    ``devices``/``num_nodes`` > 1 train with DDP (``strategy`` defaults to ``ddp``; under
    torchrun or SLURM Lightning picks up the environment). ``resume`` continues from
    ``checkpoints/last.ckpt`` (written every epoch) with the same step, optimizer, scheduler
    and RNG state, and refuses a recipe that differs from the saved one in more than
    ``optim.epochs``, or fewer epochs than the run already trained (the CLI's ``--resume``
    without ``--set optim.epochs`` uses the run's recorded epochs); nothing in the run
    folder is written before those checks pass. ``max_epochs`` overrides ``optim.epochs``;
    ``precision`` overrides
    ``optim.precision``.

    The run folder is locked (``RUN/.lock``) for the whole call: a second ``train`` into the
    same folder is refused. With validation the exported ``model.safetensors`` holds the best
    val/acc epoch's weights, without it the last epoch's.
    """
    paths = RunPaths(Path(run_dir))
    _check_run_outside_videos(paths, dataset)
    if resume and not paths.root.is_dir():  # before the lock creates the folder
        raise RunError(f"{paths.root}: nothing to resume (no checkpoints/last.ckpt)")
    # Replicas a launcher started (Lightning's DDP script launcher, torchrun, SLURM) call
    # train() too: only the first process takes the lock the others would trip over.
    guard = lock_run(paths) if _is_first_process() else contextlib.nullcontext()
    with guard:
        return _train(
            recipe,
            dataset,
            paths,
            store=store,
            devices=devices,
            num_nodes=num_nodes,
            accelerator=accelerator,
            strategy=strategy,
            resume=resume,
            max_epochs=max_epochs,
            precision=precision,
            progress=progress,
            callbacks=callbacks,
        )


def _check_run_outside_videos(paths: RunPaths, dataset: DatasetConfig | TrainData) -> None:
    """A run folder inside a folder dataset would be scanned as part of it (its exported and
    annotated videos too)."""
    if not isinstance(dataset, DatasetConfig) or resolve_kind(dataset) != "folder":
        return
    root, run = Path(os.path.abspath(dataset.root)), Path(os.path.abspath(paths.root))
    if run == root or run.is_relative_to(root):
        raise RunError(
            f"{paths.root}: the run folder is inside the dataset folder {dataset.root}, which "
            "is read as '<class>/<video>'; put runs elsewhere (--run)"
        )


def _check_same_videos(paths: RunPaths, previous: RunInfo | None, data: DataRecord) -> None:
    """A resumed run trains on the videos it started on (their ids' fingerprint)."""
    if previous is None or previous.videos is None or data.videos is None:
        return  # data given in memory, or a run from before fingerprints: nothing to compare
    old, new = previous.videos, data.videos
    if old.fingerprint != new.fingerprint:
        was = (previous.dataset and previous.dataset.root) or "?"
        now = (data.dataset and data.dataset.root) or "?"
        raise RunError(
            f"{paths.root} was trained on {was} ({old.count} videos); {now} "
            f"({new.count} videos) is other data: resume on the data the run was "
            "trained on, or train a new run"
        )


@dataclass
class _Resume:
    """What a resumed run carries over, read and checked before anything is written."""

    ckpt_path: str | None = None
    previous: RunInfo | None = None
    """run.json of the run resumed; None before its first training finished."""
    classes: list[str] = field(default_factory=list)


def _check_resume(paths: RunPaths, recipe: Recipe, resume: bool, max_epochs: int | None) -> _Resume:
    """Every check on an existing run folder, before anything is written to it."""
    if not resume:
        if paths.last_ckpt.is_file():
            raise RunError(
                f"{paths.root} already holds a run; pass --resume (Python: resume=True) to "
                "continue it or pick another folder"
            )
        return _Resume()
    if not paths.last_ckpt.is_file():
        raise RunError(f"{paths.root}: nothing to resume (no checkpoints/last.ckpt)")
    _check_same_recipe(paths, recipe)
    # Lightning unpickles last.ckpt itself: make sure it is tensors and plain values first.
    for ckpt in (paths.last_ckpt, paths.best_ckpt):
        if ckpt.is_file():
            load_checkpoint(ckpt)
    _check_epochs_to_resume(paths, recipe, max_epochs)
    previous = read_run_info(paths.root) if paths.info.is_file() else None
    return _Resume(str(paths.last_ckpt), previous, read_classes(paths))


def _load_data(
    recipe: Recipe,
    dataset: DatasetConfig | TrainData,
    paths: RunPaths,
    store: str | os.PathLike[str] | None,
    progress: bool,
    carried: _Resume,
) -> TrainData:
    """The prepared data, checked to be trainable (and, on resume, the run's data)."""
    data = (
        dataset
        if isinstance(dataset, TrainData)
        else prepare_data(recipe, dataset, store=store, progress=progress)
    )
    if data.train is None or len(data.train) == 0:  # type: ignore[arg-type]
        raise DatasetError("the train split is empty: no videos to train on")
    check_feature_dim(recipe, data.train)
    if len(data.classes) < 2:
        raise DatasetError(f"need at least 2 classes to train, found {len(data.classes)}")
    if carried.ckpt_path is not None:
        if carried.classes != list(data.classes):
            raise RunError(
                f"{paths.classes}: the dataset's classes differ from the run's "
                f"({len(data.classes)} vs {len(carried.classes)} classes); resume on the data "
                "the run was trained on"
            )
        _check_same_videos(paths, carried.previous, data.info)
    return data


def _build_trainer(
    recipe: Recipe,
    paths: RunPaths,
    *,
    has_val: bool,
    devices: int | str,
    num_nodes: int,
    accelerator: str,
    strategy: str | None,
    max_epochs: int | None,
    precision: str,
    progress: bool,
    callbacks: Sequence[Callback],
) -> L.Trainer:
    """The Lightning trainer: checkpoints (best by val/acc, last every epoch), loggers, DDP."""
    optim = recipe.optim
    monitor = "val/acc" if has_val else "train/acc"
    # ModelCheckpoint(save_last=True) writes last.ckpt only when it saves a top-k checkpoint,
    # i.e. when the metric improved: a resume would redo epochs. A second checkpoint without a
    # monitor writes last.ckpt every epoch (after best.ckpt, so it carries the best state).
    last_checkpoint = ModelCheckpoint(
        dirpath=paths.checkpoints,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    cbs: list[Callback] = [
        RngCheckpoint(),
        ReplicaDigest(paths.logs / "replicas"),
        *([EpochProgressBar()] if progress else []),
        *callbacks,
    ]
    if has_val:  # without validation there is no "best": the last epoch is exported
        cbs.append(
            ModelCheckpoint(
                dirpath=paths.checkpoints,
                filename="best",
                monitor="val/acc",
                mode="max",
                save_top_k=1,
                enable_version_counter=False,
            )
        )
    cbs.append(last_checkpoint)
    if optim.early_stopping:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=optim.early_stopping))
    loggers = [
        TensorBoardLogger(paths.logs, name="tensorboard", default_hp_metric=False),
        CSVLogger(paths.logs, name="csv"),
    ]
    multi = num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy or ("ddp" if multi else "auto"),
        precision=precision,  # type: ignore[arg-type]
        max_epochs=max_epochs or optim.epochs,
        gradient_clip_val=optim.grad_clip,
        deterministic=optim.deterministic,
        callbacks=cbs,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
        log_every_n_steps=10,
    )


def _fit(
    trainer: L.Trainer,
    module: ActionModule,
    datamodule: ActionDataModule,
    paths: RunPaths,
    ckpt_path: str | None,
) -> None:
    """``trainer.fit`` without the hints nobody can act on; a metric never logged (every
    video skipped) is one line naming the skip report."""
    with warnings.catch_warnings():
        # Tiny datasets trip Lightning's "few batches" / "num_workers" hints on every run, and
        # every resume its "checkpoint directory ... is not empty".
        warnings.filterwarnings(
            "ignore",
            message=".*(does not have many workers|number of training batches|exists and is not empty).*",
        )
        # Lightning's own use of a deprecated torch API, on every run: nothing a user can do
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
        if _eval_modules_are_frozen_backbones(module):  # frozen on purpose (issue 9)
            warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except MisconfigurationException as exc:  # a metric never logged: all videos skipped
            if "monitor" not in str(exc) and "not available" not in str(exc):
                raise
            split = "validation" if "val/" in str(exc) else "training"
            raise DatasetError(
                f"{paths.root}: no {split} score: every {split} video was skipped (reasons in "
                f"{paths.skipped}); no model written"
            ) from None


def _export(
    paths: RunPaths,
    module: ActionModule,
    data: TrainData,
    *,
    has_val: bool,
) -> dict[str, Any]:
    """Write the exported weights (best val/acc epoch, else the last), the report of skipped
    videos and the list of trained videos; returns the checkpoint facts for ``run.json``
    (:class:`RunInfo` fields)."""
    if not paths.last_ckpt.is_file():
        raise HarkitError(f"{paths.root}: training ended without a checkpoint")
    # Read back from the files: with fork/spawn launchers this process's trainer did not train.
    last = load_checkpoint(paths.last_ckpt)
    if not last.get("steps_trained", 1):  # every batch was skipped: the model is untrained
        raise DatasetError(
            f"{paths.root}: no training step ran: every training video was skipped "
            f"({len(data.train)} in the train split; reasons in {paths.skipped}); no model "
            "written"
        )  # type: ignore[arg-type]
    epochs_run = last["epoch"] + 1  # last.ckpt is written at the end of every epoch
    if has_val and paths.best_ckpt.is_file():
        exported_file, exported = paths.best_ckpt, load_checkpoint(paths.best_ckpt)
        # Every user-facing epoch counts from 1; Lightning's 0-based index is `epoch_index`.
        reason = f"best val/acc at epoch {exported['epoch'] + 1} of {epochs_run}"
    else:
        exported_file, exported = paths.last_ckpt, last
        reason = "last epoch: no validation" if not has_val else "last epoch: no val/acc score"
    best_score = _val_best(exported) if has_val else None
    module.model.load_state_dict(
        {
            k.removeprefix("model."): v
            for k, v in exported["state_dict"].items()
            if k.startswith("model.")
        }
    )
    save_weights(module.model, paths.weights)
    if not paths.skipped.is_file():  # an empty report says "checked, none skipped"
        atomic_write_text(paths.skipped, "{}\n")
    parts = [data.videos[s] for s in ("train", "val") if s in data.videos]
    if parts:  # evaluation refuses test videos that match these (cross-split leakage)
        trained = {key: sorted({v for part in parts for v in part[key]}) for key in parts[0]}
        atomic_write_text(paths.trained_videos, json.dumps(trained, indent=0) + "\n")
    # Epochs count from 1 (epoch N of epochs_run); `epoch_index` is Lightning's 0-based one.
    return {
        "exported": ExportedCheckpoint(
            checkpoint=exported_file.relative_to(paths.root).as_posix(),
            epoch=exported["epoch"] + 1,
            epoch_index=exported["epoch"],
            reason=reason,
        ),
        "best_epoch": exported["epoch"] + 1 if has_val else None,
        "best_score": best_score,
        "epochs_run": epochs_run,
        "global_step": last["global_step"],
    }


def _train(
    recipe: Recipe,
    dataset: DatasetConfig | TrainData,
    paths: RunPaths,
    *,
    store: str | os.PathLike[str] | None,
    devices: int | str,
    num_nodes: int,
    accelerator: str,
    strategy: str | None,
    resume: bool,
    max_epochs: int | None,
    precision: str | None,
    progress: bool,
    callbacks: Sequence[Callback],
) -> TrainResult:
    carried = _check_resume(paths, recipe, resume, max_epochs)
    check_model_fits(recipe)  # before any data is prepared or anything is written
    L.seed_everything(recipe.optim.seed, workers=True, verbose=False)
    data = _load_data(recipe, dataset, paths, store, progress, carried)
    has_val = data.val is not None and len(data.val) > 0  # type: ignore[arg-type]
    # Every check has passed: only now is the run folder written. On resume the classes are
    # unchanged (checked) and the recipe differs in optim.epochs at most.
    if resume:
        save_config(recipe, paths.recipe)
    else:
        write_recipe_and_classes(paths, recipe, data.classes)
    started = _now()

    skips = open_skip_report(paths.skipped)  # a damaged report is rebuilt, with a warning
    monitor = "val/acc" if has_val else "train/acc"
    module = ActionModule(recipe, len(data.classes), monitor=monitor, skip_report=skips)
    accel = accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    used_precision = lightning_precision(precision or recipe.optim.precision, accel)
    trainer = _build_trainer(
        recipe,
        paths,
        has_val=has_val,
        devices=devices,
        num_nodes=num_nodes,
        accelerator=accel,
        strategy=strategy,
        max_epochs=max_epochs,
        precision=used_precision,
        progress=progress,
        callbacks=callbacks,
    )
    datamodule = ActionDataModule(
        data, recipe.optim.batch_size, recipe.optim.num_workers, seed=recipe.optim.seed
    )
    _fit(trainer, module, datamodule, paths, carried.ckpt_path)
    if not trainer.is_global_zero:
        return TrainResult(paths.root, None)
    exported = _export(paths, module, data, has_val=has_val)

    from harkit.models.builder import feature_dims

    previous = carried.previous
    info = RunInfo(
        **dict(data.info),
        recipe=recipe.name,
        mode=recipe.mode,
        num_classes=len(data.classes),
        feature_dims=feature_dims(recipe) if recipe.mode == "features" else None,
        parameters=count_parameters(module.model),
        trainable_parameters=count_parameters(module.model, trainable_only=True),
        monitor=monitor,
        **exported,
        devices=devices,
        num_nodes=num_nodes,
        precision=used_precision,
        skipped_videos=len(skips),
        flow=_flow_settings(recipe, store),
        started=(previous and previous.started) or started,
        finished=_now(),
        resumed=resume or (previous is not None and previous.resumed),
    )
    write_run_info(paths, info)
    return TrainResult(paths.root, info)
