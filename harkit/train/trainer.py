"""``train()``: one recipe on one dataset split into a run folder (Lightning Trainer)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from harkit.data.clips import SkipReport
from harkit.data.datasets import DatasetConfig, DatasetError
from harkit.errors import HarkitError
from harkit.io import atomic_write_text
from harkit.models.networks import count_parameters
from harkit.models.recipe import Recipe
from harkit.train.data import ActionDataModule, TrainData, check_feature_dim, prepare_data
from harkit.train.module import ActionModule
from harkit.train.run import (
    RunError,
    RunPaths,
    save_weights,
    write_recipe_and_classes,
    write_run_info,
)

__all__ = ["ReplicaDigest", "TrainResult", "lightning_precision", "train"]

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


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state_dict (names, dtypes, bytes), for replica checks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class ReplicaDigest(Callback):
    """Each rank writes ``logs/replicas/rank{k}.sha256`` of its weights when training ends.

    Distributed replicas must stay identical; differing digests reveal a broken sync.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = state_digest(pl_module.model)  # type: ignore[arg-type]
        (self.folder / f"rank{trainer.global_rank}.sha256").write_text(digest + "\n")


class TrainResult(dict):
    """What :func:`train` returns: the ``run.json`` fields (``run_dir`` added)."""


def _best_from_checkpoint(path: Path) -> tuple[int | None, float | None, dict[str, Any]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    score = None
    for key, state in ckpt.get("callbacks", {}).items():
        if str(key).startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            score = float(state["best_model_score"])
    return ckpt.get("epoch"), score, ckpt["state_dict"]


def train(
    recipe: Recipe,
    dataset: DatasetConfig | TrainData,
    run_dir: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    devices: int | str = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    strategy: str | None = None,
    resume: bool = False,
    max_epochs: int | None = None,
    precision: str | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``recipe`` on ``dataset`` (a config, or prepared :class:`TrainData`) into
    ``run_dir`` and write the run folder (see :mod:`harkit.train.run`).

    ``devices``/``num_nodes`` > 1 train with DDP (``strategy`` defaults to ``ddp``; under
    torchrun or SLURM Lightning picks up the environment). ``resume`` continues from
    ``checkpoints/last.ckpt`` with the same step, optimizer and scheduler state;
    ``max_epochs`` overrides ``optim.epochs``; ``precision`` overrides ``optim.precision``.
    """
    paths = RunPaths(Path(run_dir))
    optim = recipe.optim
    ckpt_path = None
    if resume:
        if not paths.last_ckpt.is_file():
            raise RunError(f"{paths.root}: nothing to resume (no checkpoints/last.ckpt)")
        ckpt_path = str(paths.last_ckpt)
    elif paths.last_ckpt.is_file():
        raise RunError(
            f"{paths.root} already holds a run; pass resume to continue it or pick another folder"
        )

    L.seed_everything(optim.seed, workers=True, verbose=False)
    data = (
        dataset
        if isinstance(dataset, TrainData)
        else prepare_data(recipe, dataset, store=store, progress=progress)
    )
    if data.train is None or len(data.train) == 0:  # type: ignore[arg-type]
        raise DatasetError("the train split is empty: no videos to train on")
    check_feature_dim(recipe, data.train)
    num_classes = len(data.classes)
    if num_classes < 2:
        raise DatasetError(f"need at least 2 classes to train, found {num_classes}")

    has_val = data.val is not None and len(data.val) > 0  # type: ignore[arg-type]
    monitor = "val/acc" if has_val else "train/acc"
    paths.root.mkdir(parents=True, exist_ok=True)
    write_recipe_and_classes(paths, recipe, data.classes)
    started = _now()

    skips = SkipReport(paths.skipped)
    module = ActionModule(recipe, num_classes, monitor=monitor, skip_report=skips)
    checkpoint = ModelCheckpoint(
        dirpath=paths.checkpoints,
        filename="best",
        monitor=monitor,
        mode="max",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    cbs: list[Callback] = [checkpoint, ReplicaDigest(paths.logs / "replicas"), *callbacks]
    if optim.early_stopping:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=optim.early_stopping))
    loggers = [
        TensorBoardLogger(paths.logs, name="tensorboard", default_hp_metric=False),
        CSVLogger(paths.logs, name="csv"),
    ]
    multi = num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    accel = accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    trainer = L.Trainer(
        accelerator=accel,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy or ("ddp" if multi else "auto"),
        precision=lightning_precision(precision or optim.precision, accel),  # type: ignore[arg-type]
        max_epochs=max_epochs or optim.epochs,
        gradient_clip_val=optim.grad_clip,
        deterministic=optim.deterministic,
        callbacks=cbs,
        logger=loggers,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
        log_every_n_steps=10,
    )
    datamodule = ActionDataModule(data, optim.batch_size, optim.num_workers)
    with warnings.catch_warnings():
        # Tiny datasets trip Lightning's "few batches" / "num_workers" hints on every run.
        warnings.filterwarnings("ignore", message=".*(does not have many workers|number of training batches).*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    if not trainer.is_global_zero:
        return TrainResult()
    best = paths.best_ckpt if paths.best_ckpt.is_file() else paths.last_ckpt
    if not best.is_file():
        raise HarkitError(f"{paths.root}: training ended without a checkpoint")
    best_epoch, best_score, state = _best_from_checkpoint(best)
    module.model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    )
    save_weights(module.model, paths.weights)
    if not paths.skipped.is_file():  # an empty report says "checked, none skipped"
        atomic_write_text(paths.skipped, "{}\n")

    last: dict[str, Any] = {}
    if paths.last_ckpt.is_file():
        last = torch.load(paths.last_ckpt, map_location="cpu", weights_only=False)
    previous: dict[str, Any] = {}
    if resume and paths.info.is_file():
        previous = json.loads(paths.info.read_text(encoding="utf-8"))
    from harkit.models.builder import feature_dims

    info: dict[str, Any] = {
        "recipe": recipe.name,
        "mode": recipe.mode,
        "num_classes": num_classes,
        "feature_dims": feature_dims(recipe) if recipe.mode == "features" else None,
        **data.info,
        "parameters": count_parameters(module.model),
        "trainable_parameters": count_parameters(module.model, trainable_only=True),
        "monitor": monitor,
        "best_epoch": best_epoch,
        "best_score": best_score,
        "best_val_acc": best_score if has_val else None,
        # From last.ckpt: with fork/spawn launchers this process's trainer did not train.
        "epochs_run": last.get("epoch", -1) + 1,
        "global_step": last.get("global_step", trainer.global_step),
        "devices": devices,
        "num_nodes": num_nodes,
        "precision": lightning_precision(precision or optim.precision, accel),
        "skipped_videos": len(skips),
        "started": previous.get("started", started),
        "finished": _now(),
        "resumed": bool(resume) or bool(previous.get("resumed")),
    }
    write_run_info(paths, info)
    return TrainResult(info, run_dir=str(paths.root))
