"""The report of one evaluation: ``report.md``, ``metrics.json``, confusion matrices and
``predictions.csv`` (tables over several evaluations: :mod:`harkit.evaluate.tables`).

Units: every metric in ``report.md`` is a percentage (its header says ``(%)``); JSON and CSV
files keep fractions (0-1), as :class:`Metrics` holds them.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.evaluate.errors import EvaluationError
from harkit.evaluate.markdown import json_text, md_table, percent_number, percent_text
from harkit.evaluate.metrics import HEADLINE, HEADLINE_LABELS, Metrics
from harkit.evaluate.paper import compare_with_paper, paper_lines
from harkit.evaluate.plots import plot_confusion_matrix
from harkit.io import atomic_write_text

REPORT_FILES = {
    "report": "report.md",
    "metrics": "metrics.json",
    "confusion_csv": "confusion_matrix.csv",
    "confusion_png": "confusion_matrix.png",
    "confusion_normalized_png": "confusion_matrix_normalized.png",
}


def format_prediction(label: str, confidence: float) -> str:
    """One prediction as the papers print it: ``"Class: Diving, Confidence: 0.98"``."""
    confidence = float(confidence)
    if not math.isfinite(confidence):
        raise EvaluationError(f"confidence must be a finite number, got {confidence}")
    return f"Class: {label}, Confidence: {confidence:.2f}"


def coverage_text(coverage: Mapping[str, Any]) -> str:
    """``"1 of 5 test videos evaluated, 4 skipped (see RUN/report/skipped.json)"``: how many
    test videos the metrics are over (``coverage``: ``total``, ``evaluated``, ``skipped``,
    ``skipped_file``)."""
    total, evaluated = coverage.get("total"), coverage.get("evaluated")
    text = f"{evaluated} of {total} test videos evaluated"
    skipped = coverage.get("skipped") or 0
    if skipped:
        where = coverage.get("skipped_file")
        text += f", {skipped} skipped" + (f" (see {where})" if where else " (unreadable)")
    return text


def _without_samples(metrics: Metrics, names: Sequence[str]) -> list[str]:
    """Classes with no test sample: their accuracy and recall are undefined."""
    return [name for name, row in zip(names, metrics.per_class, strict=True) if not row.support]


def _split_lines(split_info: Mapping[str, Any]) -> list[str]:
    if not split_info:
        return ["Split: not reported.", "", "Leakage check: not reported."]
    parts = [f"{key}: {value}" for key, value in split_info.items() if key != "leakage"]
    leakage = split_info.get("leakage", "not reported")
    return [
        "Split: " + (", ".join(parts) if parts else "not reported") + ".",
        "",
        f"Leakage check: {leakage}.",
    ]


def _confusion_csv(cm: np.ndarray, classes: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, cm, strict=True):
        writer.writerow([name, *(int(v) for v in row)])
    return buffer.getvalue()


def _top_confusions(cm: np.ndarray, classes: Sequence[str], limit: int) -> list[list[Any]]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None, kind="stable")[::-1][:limit]
    rows = []
    for index in flat:
        i, j = np.unravel_index(index, off.shape)
        if off[i, j] == 0:
            break
        rows.append([classes[i], classes[j], int(off[i, j])])
    return rows


def write_report(
    out_dir: str | os.PathLike[str],
    metrics: Metrics,
    *,
    classes: Sequence[str] | None = None,
    split_info: Mapping[str, Any] | None = None,
    title: str = "Evaluation report",
    video_level: Metrics | None = None,
    reported: Mapping[str, float] | None = None,
    training: Mapping[str, Any] | None = None,
    coverage: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``metrics.json``, ``confusion_matrix.csv`` and the raw and
    row-normalised confusion matrix PNGs into ``out_dir``; every file atomically.

    ``classes`` overrides the names stored in ``metrics`` (same count). ``split_info`` is
    shown as given, e.g. ``{'dataset': 'ucf101', 'split': 1, 'train': 9537, 'test': 3783,
    'leakage': 'none'}``. The per-class table and confusion matrix are those of ``metrics``.
    ``reported`` (the recipe's paper numbers) adds a "Paper vs harkit" table, matched on
    ``split_info['dataset']`` and ``['split']`` (see :func:`compare_with_paper`).
    ``training`` says which weights were tested: ``epochs_trained``, ``val_acc`` (fraction or
    None) and ``checkpoint`` (``which``: best/last, ``file``, 1-based ``epoch``, ``reason``),
    as :func:`harkit.experiments.training_summary` gives them. ``coverage`` (``total``,
    ``evaluated``, ``skipped`` test videos, ``skipped_file``) says how many test videos the
    metrics are over (see :func:`coverage_text`); skipped videos are flagged in report.md.
    Classes without a test sample are flagged in the per-class table and listed in
    metrics.json (``classes_without_test_samples``); mean class accuracy leaves them out.
    Returns the written paths by kind (see ``REPORT_FILES``).
    """
    names = [str(c) for c in (classes if classes is not None else metrics.classes)]
    if len(names) != metrics.num_classes:
        raise EvaluationError(
            f"{len(names)} class names given for metrics over {metrics.num_classes} classes"
        )
    if video_level is not None and video_level.num_classes != metrics.num_classes:
        raise EvaluationError(
            f"video-level metrics have {video_level.num_classes} classes, "
            f"clip-level {metrics.num_classes}"
        )
    split_info = dict(split_info or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in REPORT_FILES.items()}

    plot_confusion_matrix(metrics.confusion, names, paths["confusion_png"], normalize=False)
    plot_confusion_matrix(
        metrics.confusion, names, paths["confusion_normalized_png"], normalize=True
    )
    atomic_write_text(paths["confusion_csv"], _confusion_csv(metrics.confusion, names))

    payload = {
        "title": title,
        "split_info": split_info,
        "metrics": {**metrics.to_dict(), "classes": names},
        "video_level": None if video_level is None else {**video_level.to_dict(), "classes": names},
    }
    if training is not None:
        payload["training"] = dict(training)
    if coverage is not None:
        payload["coverage"] = {**coverage, "text": coverage_text(coverage)}
    payload["classes_without_test_samples"] = _without_samples(metrics, names)
    # The papers count one prediction per video: compare the video level where there is one.
    paper = compare_with_paper(
        reported,
        (video_level or metrics).headline(),
        dataset=split_info.get("dataset"),
        split=split_info.get("split"),
    )
    if paper:
        payload["paper"] = paper
    try:
        text = json_text(payload)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"split_info is not JSON-serialisable: {exc}") from exc
    atomic_write_text(paths["metrics"], text)

    atomic_write_text(
        paths["report"],
        _report_markdown(metrics, names, split_info, title, video_level, paper, training, coverage),
    )
    return paths


def checkpoint_text(checkpoint: Mapping[str, Any], epochs: Any) -> str:
    which = checkpoint.get("which") or "unknown"
    where = [str(checkpoint["file"])] if checkpoint.get("file") else []
    if checkpoint.get("epoch") is not None:
        where.append(f"epoch {checkpoint['epoch']}" + (f" of {epochs}" if epochs else ""))
    text = f"{which}" + (f" ({', '.join(where)})" if where else "")
    return text + (f": {checkpoint['reason']}" if checkpoint.get("reason") else "")


def _training_lines(training: Mapping[str, Any] | None) -> list[str]:
    if training is None:
        return []
    epochs = training.get("epochs_trained")
    val = training.get("val_acc")
    checkpoint = training.get("checkpoint") or {}
    return [
        "## Training",
        "",
        f"- Epochs trained: {epochs if epochs is not None else 'not recorded'}",
        "- Validation accuracy: "
        + (
            percent_text(val) + " (best val/acc)"
            if val is not None
            else "none (no validation split)"
        ),
        f"- Checkpoint used: {checkpoint_text(checkpoint, epochs)}, exported to "
        f"{training.get('weights', 'model.safetensors')}",
        "",
    ]


def _report_markdown(
    metrics: Metrics,
    names: Sequence[str],
    split_info: Mapping[str, Any],
    title: str,
    video_level: Metrics | None,
    paper: Sequence[Mapping[str, Any]] = (),
    training: Mapping[str, Any] | None = None,
    coverage: Mapping[str, Any] | None = None,
) -> str:
    levels = [(f"{metrics.level.capitalize()} level (%)", metrics)]
    if video_level is not None:
        levels.append((f"{video_level.level.capitalize()} level (%)", video_level))
    header = ["Metric", *(label for label, _ in levels)]
    rows: list[list[Any]] = []
    for key in HEADLINE:
        label = HEADLINE_LABELS[key]
        if key == "top5":
            label = f"Top-{metrics.top_k} accuracy"
        rows.append([label, *(percent_number(m.headline()[key]) for _, m in levels)])
    samples = ", ".join(f"{m.num_samples} ({m.level} level)" for _, m in levels)

    missing = _without_samples(metrics, names)
    covered = []
    if coverage is not None:
        covered = [f"Test videos: {coverage_text(coverage)}.", ""]
        if coverage.get("skipped"):
            covered += [
                f"**Warning: {coverage_text(coverage)}; every metric below is over "
                f"the {coverage.get('evaluated')} evaluated videos only.**",
                "",
            ]
    mean_class = (
        "Mean class accuracy is the mean over classes of the share of each class's samples "
        "classified correctly"
    )
    if missing:
        mean_class += (
            f", over the {len(names) - len(missing)} of {len(names)} classes with test samples "
            f"({len(missing)} without any are left out: see the per-class table)"
        )
    lines = [
        f"# {title}",
        "",
        "## Data",
        "",
        *_split_lines(split_info),
        "",
        *covered,
        *_training_lines(training),
        "## Summary",
        "",
    ]
    lines += md_table(header, rows)
    lines += [
        "",
        f"Samples: {samples}. {mean_class}. Macro averages weigh every class equally; weighted "
        "averages weigh classes by their number of samples.",
        "",
        *paper_lines(paper, split_info.get("dataset")),
        f"## Per-class results ({metrics.level} level, %)",
        "",
    ]
    per_class_rows = [
        [
            name,
            row.support,
            percent_number(row.accuracy),
            percent_number(row.precision),
            percent_number(row.recall),
            percent_number(row.f1),
        ]
        if row.support
        else [f"{name} (no test sample)", 0, "–", percent_number(row.precision), "–", "–"]
        for name, row in zip(names, metrics.per_class, strict=True)
    ]
    lines += md_table(
        ["Class", "Support", "Accuracy (%)", "Precision (%)", "Recall (%)", "F1 (%)"],
        per_class_rows,
    )
    if missing:
        lines += [
            "",
            f"{len(missing)} of {len(names)} classes have no test sample "
            f"({', '.join(missing)}): their accuracy, recall and F1 are undefined (–), "
            "and mean class accuracy leaves them out.",
        ]
    confusions = _top_confusions(metrics.confusion, names, limit=10)
    if confusions:
        lines += ["", "## Most frequent confusions", ""]
        lines += md_table(["True class", "Predicted as", "Clips"], confusions)
    lines += [
        "",
        "## Confusion matrix",
        "",
        f"Rows are true classes, columns predicted classes ({metrics.level} level).",
        "",
        f"![Confusion matrix]({REPORT_FILES['confusion_png']})",
        "",
        f"![Row-normalised confusion matrix]({REPORT_FILES['confusion_normalized_png']})",
        "",
        f"Data: [{REPORT_FILES['confusion_csv']}]({REPORT_FILES['confusion_csv']}), "
        f"all metrics: [{REPORT_FILES['metrics']}]({REPORT_FILES['metrics']}).",
        "",
    ]
    return "\n".join(lines)


def write_predictions(
    path: str | os.PathLike[str],
    video_ids: Any,
    probs: Any,
    labels: Any,
    classes: Sequence[str],
    videos: Sequence[tuple[str, str | None]],
    *,
    top_k: int = 5,
) -> Path:
    """``predictions.csv``: one row per test video (its clips' probabilities averaged):
    ``video, group, true, predicted, confidence, correct, top_k`` (``label:prob;...``).
    ``videos[i]`` is the id and group of video position ``i`` in ``video_ids``."""
    from harkit.evaluate.metrics import aggregate_clips

    v_labels, v_probs, v_ids = aggregate_clips(video_ids, probs, labels)
    k = min(top_k, len(classes))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video", "group", "true", "predicted", "confidence", "correct", "top_k"])
    for label, row, position in zip(v_labels, v_probs, v_ids, strict=True):
        video, group = videos[int(position)]
        best = np.argsort(-row, kind="stable")[:k]
        writer.writerow(
            [
                video,
                group or "",
                classes[int(label)],
                classes[int(best[0])],
                f"{row[best[0]]:.4f}",
                int(best[0] == label),
                ";".join(f"{classes[int(c)]}:{row[c]:.4f}" for c in best),
            ]
        )
    return atomic_write_text(path, buffer.getvalue())
