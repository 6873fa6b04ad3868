"""Run a trained model over a test set and write reports (metrics come from harkit.evaluate).

Clip level: every clip (view) is one prediction. Video level (``clips > 1``): the
probabilities of a video's views are averaged (TSN-style multi-view testing). Split
averaging lives in :mod:`harkit.experiments.splits`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field, InstanceOf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harkit._lazy import validated
from harkit.arguments import PathArg, RunFolder
from harkit.data.clips import SkipReport, collate_clips
from harkit.data.datasets import DatasetConfig, DatasetError, VideoIndex
from harkit.data.jobs import loader_worker_init, open_skip_report, video_id
from harkit.evaluate import Metrics, aggregate_clips, compute_metrics, write_report
from harkit.evaluate.reports import write_predictions
from harkit.train.data import check_feature_dim, prepare_data
from harkit.train.run import RunError, RunPaths, load_run, read_json, read_run_info
from harkit.train.run_info import RunInfo, VideoFingerprint

__all__ = [
    "EvalResult",
    "Predictions",
    "evaluate_predictions",
    "evaluate_run",
    "predict",
    "training_summary",
]


MAX_VIEWS = 1000
"""Most clips (views) per test video an evaluation takes (``--clips``)."""


@dataclass
class Predictions:
    """Softmax probabilities ``(N, C)``, labels ``(N,)`` and video ids ``(N,)`` per clip."""

    probs: np.ndarray
    labels: np.ndarray
    video_ids: np.ndarray
    skipped: int = 0
    """Clips (views) skipped as unreadable."""
    skipped_videos: tuple[str, ...] = ()
    """Paths of the videos those clips came from, each once."""


@dataclass
class EvalResult:
    """Clip-level (and video-level) metrics, the report files written, and the run's training
    summary (:func:`training_summary`; None when no run folder was evaluated)."""

    clip: Metrics
    video: Metrics | None
    files: dict[str, Path] = field(default_factory=dict)
    predictions: Predictions | None = None
    training: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None
    """Test videos ``total`` / ``evaluated`` / ``skipped`` and the ``skipped_file`` listing
    them (:func:`harkit.evaluate.reports.coverage_text` says it in words)."""


def training_summary(info: RunInfo) -> dict[str, Any]:
    """What a report says about how the evaluated weights were trained, from ``run.json``.

    ``epochs_trained`` counts epochs run; ``val_acc`` is the best validation accuracy
    (fraction; None without validation); ``checkpoint`` names the checkpoint exported to
    ``model.safetensors``: ``best`` or ``last``, its file, and its epoch counted from 1 like
    ``epochs_trained``. run.json's ``exported.epoch`` counts from 1 too, next to Lightning's
    0-based ``epoch_index``; a run.json without ``epoch_index`` (an older harkit) holds the
    0-based index in ``epoch``.
    """
    exported = info.exported
    file = exported.checkpoint if exported else None
    epoch = exported.epoch if exported else None
    if exported is not None and exported.epoch_index is None:
        epoch = exported.epoch + 1  # an older run.json: `epoch` was Lightning's 0-based index
    which = None if not file else ("best" if Path(file).stem == "best" else "last")
    # older run.jsons' reason for best.ckpt names the 0-based epoch: say it without a number
    reason = "highest validation accuracy" if which == "best" else exported and exported.reason
    return {
        "epochs_trained": info.epochs_run,
        "val_acc": info.best_score,
        "checkpoint": {"which": which, "file": file, "epoch": epoch, "reason": reason},
        "weights": "model.safetensors",
    }


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision in ("bf16", "bf16-mixed"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()  # not inference_mode: bf16 autocast GRUs ran 2x slower under it on CPU
def predict(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: str | torch.device = "cpu",
    precision: str = "32",
    skip_report: SkipReport | None = None,
) -> Predictions:
    """Run ``model`` (eval mode) over collated clip batches and collect probabilities."""
    device = torch.device(device)
    model.eval().to(device)
    probs, labels, ids = [], [], []
    skipped = 0
    skipped_videos: dict[str, None] = {}
    for batch in loader:
        skipped += len(batch.get("skipped", ()))
        skipped_videos.update((str(v.path), None) for v in batch.get("skipped", ()))
        if skip_report is not None:
            skip_report.record_batch(batch)
        if "video" not in batch:
            continue
        with _autocast(device, precision):
            logits = model(batch["video"].to(device), batch["lengths"].to(device))
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        labels.append(batch["label"].numpy())
        ids.append(batch["index"].numpy())
    if not probs:
        raise DatasetError("nothing to evaluate: the test split is empty or every video failed")
    return Predictions(
        np.concatenate(probs),
        np.concatenate(labels),
        np.concatenate(ids),
        skipped,
        tuple(skipped_videos),
    )


def evaluate_predictions(
    preds: Predictions,
    classes: Sequence[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    split_info: dict[str, Any] | None = None,
    title: str = "Evaluation report",
    video_level: bool = False,
    reported: dict[str, float] | None = None,
    training: dict[str, Any] | None = None,
    coverage: dict[str, Any] | None = None,
) -> EvalResult:
    """Clip-level (and with ``video_level`` video-level) metrics; reports into ``out_dir``,
    with the paper's numbers (``reported``) beside harkit's where they measure the same,
    ``training`` (:func:`training_summary`) saying which weights were tested and
    ``coverage`` how many test videos were evaluated and skipped."""
    clip = compute_metrics(preds.labels, preds.probs, classes, level="clip")
    video = None
    if video_level:
        v_labels, v_probs, _ = aggregate_clips(preds.video_ids, preds.probs, preds.labels)
        video = compute_metrics(v_labels, v_probs, classes, level="video")
    files: dict[str, Path] = {}
    if out_dir is not None:
        files = write_report(
            out_dir,
            clip,
            classes=classes,
            split_info=split_info,
            title=title,
            video_level=video,
            reported=reported,
            training=training,
            coverage=coverage,
        )
    return EvalResult(clip, video, files, preds, training, coverage)


@validated
def evaluate_run(
    run_dir: RunFolder,
    dataset: InstanceOf[DatasetConfig] | InstanceOf[Dataset] | None = None,
    *,
    clips: Annotated[int, Field(ge=1, le=MAX_VIEWS)] = 1,
    store: PathArg | None = None,
    out_dir: PathArg | None = None,
    batch_size: Annotated[int, Field(ge=1)] | None = None,
    device: str | None = None,
    precision: str = "32",
    recorded_overrides: dict[str, Any] | None = None,
) -> EvalResult:
    """Evaluate the run folder's model on the test split and write ``RUN/report/``.

    ``dataset``: a :class:`DatasetConfig` (default: the one recorded in ``run.json``, with
    ``recorded_overrides`` such as ``{'split': 2}``), or a ready test :class:`Dataset` of clip
    dicts. Test videos the run trained on are refused unless the config allows leakage, and
    the recorded data must still be the data the run trained on. ``clips``: views per video (video-level
    metrics when > 1). ``store``: feature store (default: the training run's).
    """
    paths = RunPaths(Path(run_dir))
    info = read_run_info(paths.root)
    recipe, classes, model = load_run(paths.root)
    split_info: dict[str, Any] = {}
    total: int | None = None
    if isinstance(dataset, Dataset):
        test_set = dataset
        split_info = {"dataset": "given", "leakage": info.leakage or "not reported"}
    else:
        recorded = dataset is None
        if recorded:
            if info.dataset_config is None:
                raise RunError(f"{paths.root}: run.json records no dataset; pass one")
            dataset = DatasetConfig.model_validate(
                {**info.dataset_config.model_dump(), **(recorded_overrides or {})}
            )
        store = store or info.store
        data = prepare_data(
            recipe.model_copy(
                update={"optim": recipe.optim.model_copy(update={"val_fraction": 0})}
            ),
            dataset,
            store=store,
            views=clips,
            splits=("test",),  # only the test videos' features are checked (and extracted)
        )
        record = data.info
        assert record.dataset is not None and record.counts is not None  # prepare_data's
        if data.test is None or len(data.test) == 0:  # type: ignore[arg-type]
            raise DatasetError(f"{record.dataset.name}: the test split is empty")
        if data.classes != classes:
            raise RunError(
                f"{paths.root}: the dataset's classes differ from the run's classes.json "
                f"({len(data.classes)} vs {len(classes)} classes)"
            )
        if recorded:
            _check_same_videos(paths, info, record.videos, dataset)
        leaked = _trained_on(paths, data.videos.get("test", {}), dataset)
        test_set = data.test
        total = record.counts.test
        split_info = {
            "dataset": record.dataset.name,
            # None for data without official splits: the report then names no split
            "split": record.dataset.split,
            "test videos": record.counts.test,
            "clips per video": clips,
            "leakage": record.leakage,
        }
        if split_info["split"] is None:
            del split_info["split"]
        if leaked:  # only with allow_leakage: marked in every output
            split_info["leakage"] = f"LEAKAGE: {leaked}"
    check_feature_dim(recipe, test_set)
    loader = DataLoader(
        test_set,
        batch_size=batch_size or recipe.optim.batch_size,
        shuffle=False,
        collate_fn=collate_clips,
        num_workers=recipe.optim.num_workers,
        worker_init_fn=loader_worker_init() if recipe.optim.num_workers > 0 else None,
    )
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    skipped_file = paths.report / "skipped.json"
    preds = predict(
        model,
        loader,
        device=dev,
        precision=precision,
        skip_report=open_skip_report(skipped_file),
    )
    # Metrics are over the videos that could be read: every output says how many that is.
    evaluated = len(np.unique(preds.video_ids))
    if total is None:  # a given Dataset: the videos it holds are those read and those skipped
        total = evaluated + len(preds.skipped_videos)
    total = max(total, evaluated)
    coverage = {
        "total": total,
        "evaluated": evaluated,
        "skipped": total - evaluated,
        "skipped_file": str(skipped_file),
    }
    report_dir = Path(out_dir or paths.report)
    result = evaluate_predictions(
        preds,
        classes,
        out_dir=report_dir,
        split_info={**split_info, "run": paths.root.name, "recipe": recipe.name},
        title=f"{recipe.name} - evaluation",
        video_level=clips > 1,
        reported=recipe.reported,
        training=training_summary(info),
        coverage=coverage,
    )
    if (videos := _test_videos(test_set, dataset)) is not None:
        result.files["predictions"] = write_predictions(
            report_dir / "predictions.csv",
            preds.video_ids,
            preds.probs,
            preds.labels,
            classes,
            videos,
        )
    return result


def _test_videos(
    test_set: Dataset, dataset: DatasetConfig | Dataset | None
) -> list[tuple[str, str | None]] | None:
    """Id and group of each video position of ``test_set``; None for a given Dataset
    that holds no index (then there is no ``predictions.csv``)."""
    index = getattr(test_set, "index", None) or getattr(
        getattr(test_set, "base", None), "index", None
    )
    if not isinstance(index, VideoIndex):
        return None
    if isinstance(dataset, DatasetConfig):
        from harkit.features.pipeline import dataset_video_root

        root = dataset_video_root(dataset)
        return [(video_id(item.path, root), item.group) for item in index]
    return [(str(item.path), item.group) for item in index]


def _check_same_videos(
    paths: RunPaths, info: RunInfo, now: VideoFingerprint | None, dataset: DatasetConfig
) -> None:
    """The data at the recorded location must be the data the run trained on."""
    then = info.videos
    if then is not None and now is not None and then.fingerprint != now.fingerprint:
        raise RunError(
            f"{paths.info}: the dataset at {dataset.root} is not the one this run trained on "
            f"({now.count} videos there now, {then.count} at training); pass "
            "--dataset to evaluate on other data"
        )


def _trained_on(paths: RunPaths, test: dict[str, list[str]], dataset: DatasetConfig) -> str:
    """What the test set shares with the run's training and validation videos (same id,
    same resolved file, or same group: a person or source video); "" when nothing.
    Refused unless the dataset config allows leakage."""
    if not paths.trained_videos.is_file() or not test:
        return ""
    trained = read_json(paths.trained_videos, dict)
    ids, files = set(trained.get("ids", [])), set(trained.get("paths", []))
    videos = [v for v, f in zip(test["ids"], test["paths"], strict=False) if v in ids]
    videos += [f for f in test["paths"] if f in files and f not in videos]
    groups = sorted(set(test["groups"]) & set(trained.get("groups", [])))
    if not videos and not groups:
        return ""
    found = (
        f"{len(videos)} of {len(test['ids'])} test videos were used to train or validate "
        f"{paths.root} (e.g. {videos[0]})"
        if videos
        else f"the test videos share {len(groups)} group(s) with the videos {paths.root} was "
        f"trained on (e.g. {groups[0]})"
    )
    if not dataset.allow_leakage:
        raise DatasetError(
            f"{found}: its score would be inflated. Evaluate the split it was trained for, "
            "or pass --allow-leakage to mark LEAKAGE in every output"
        )
    return found
