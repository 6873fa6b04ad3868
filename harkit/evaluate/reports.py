"""Markdown / JSON / CSV reports: one evaluation, the mean over splits, ablation tables."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.evaluate.errors import EvaluationError
from harkit.evaluate.metrics import HEADLINE, HEADLINE_LABELS, Metrics
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


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _cell(text: Any) -> str:
    """Markdown table cell: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"


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
) -> dict[str, Path]:
    """Write ``report.md``, ``metrics.json``, ``confusion_matrix.csv`` and the raw and
    row-normalised confusion matrix PNGs into ``out_dir``; every file atomically.

    ``classes`` overrides the names stored in ``metrics`` (same count). ``split_info`` is
    shown as given, e.g. ``{'dataset': 'ucf101', 'split': 1, 'train': 9537, 'test': 3783,
    'leakage': 'none'}``. The per-class table and confusion matrix are those of ``metrics``.
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
    try:
        text = _json_text(payload)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"split_info is not JSON-serialisable: {exc}") from exc
    atomic_write_text(paths["metrics"], text)

    atomic_write_text(
        paths["report"], _report_markdown(metrics, names, split_info, title, video_level)
    )
    return paths


def _report_markdown(
    metrics: Metrics,
    names: Sequence[str],
    split_info: Mapping[str, Any],
    title: str,
    video_level: Metrics | None,
) -> str:
    levels = [(f"{metrics.level.capitalize()} level", metrics)]
    if video_level is not None:
        levels.append((f"{video_level.level.capitalize()} level", video_level))
    header = ["Metric", *(label for label, _ in levels)]
    rows: list[list[Any]] = []
    for key in HEADLINE:
        label = HEADLINE_LABELS[key]
        if key == "top5":
            label = f"Top-{metrics.top_k} accuracy"
        rows.append([label, *(_pct(m.headline()[key]) for _, m in levels)])
    rows.append(["Samples", *(m.num_samples for _, m in levels)])

    lines = [f"# {title}", "", "## Data", "", *_split_lines(split_info), "", "## Summary", ""]
    lines += _md_table(header, rows)
    lines += [
        "",
        "Mean class accuracy is the mean over classes of the share of each class's samples "
        "classified correctly. Macro averages weigh every class equally; weighted averages "
        "weigh classes by their number of samples.",
        "",
        f"## Per-class results ({metrics.level} level)",
        "",
    ]
    per_class_rows = [
        [
            name,
            row.support,
            _pct(row.accuracy),
            f"{row.precision:.4f}",
            f"{row.recall:.4f}",
            f"{row.f1:.4f}",
        ]
        for name, row in zip(names, metrics.per_class, strict=True)
    ]
    lines += _md_table(
        ["Class", "Support", "Accuracy", "Precision", "Recall", "F1"], per_class_rows
    )
    confusions = _top_confusions(metrics.confusion, names, limit=10)
    if confusions:
        lines += ["", "## Most frequent confusions", ""]
        lines += _md_table(["True class", "Predicted as", "Clips"], confusions)
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


def average_over_splits(per_split: Mapping[str | int, Metrics]) -> dict[str, Any]:
    """Mean and (population) standard deviation of the headline metrics over splits.

    Returns ``{'splits': [...], 'per_split': {split: {metric: value}}, 'mean': {...},
    'std': {...}, 'num_splits': n}`` with split keys as strings.
    """
    if not per_split:
        raise EvaluationError("no splits to average")
    class_counts = {m.num_classes for m in per_split.values()}
    if len(class_counts) != 1:
        raise EvaluationError(f"splits disagree on the number of classes: {sorted(class_counts)}")
    table = {str(split): m.headline() for split, m in per_split.items()}
    if len(table) != len(per_split):
        raise EvaluationError("two splits have the same name")
    values = np.array([[row[key] for key in HEADLINE] for row in table.values()])
    return {
        "splits": list(table),
        "num_splits": len(table),
        "per_split": table,
        "mean": {key: float(v) for key, v in zip(HEADLINE, values.mean(axis=0), strict=True)},
        "std": {key: float(v) for key, v in zip(HEADLINE, values.std(axis=0), strict=True)},
    }


def write_splits_report(
    out_dir: str | os.PathLike[str],
    per_split: Mapping[str | int, Metrics],
    *,
    title: str = "Results over splits",
) -> dict[str, Path]:
    """Write ``splits.md`` and ``splits.json``: one row per split, then the mean and std."""
    summary = average_over_splits(per_split)
    out = Path(out_dir)
    header = ["Split", *(HEADLINE_LABELS[key] for key in HEADLINE)]
    rows: list[list[Any]] = [
        [split, *(_pct(summary["per_split"][split][key]) for key in HEADLINE)]
        for split in summary["splits"]
    ]
    rows.append(["**mean**", *(f"**{_pct(summary['mean'][key])}**" for key in HEADLINE)])
    rows.append(["std", *(_pct(summary["std"][key]) for key in HEADLINE)])
    mean, std = summary["mean"]["top1"], summary["std"]["top1"]
    lines = [
        f"# {title}",
        "",
        f"Reported accuracy is the mean over the official splits: top-1 {_pct(mean)} "
        f"± {_pct(std)} over {summary['num_splits']} split(s) (population std).",
        "",
        *_md_table(header, rows),
        "",
    ]
    paths = {"report": out / "splits.md", "json": out / "splits.json"}
    atomic_write_text(paths["json"], _json_text(summary))
    atomic_write_text(paths["report"], "\n".join(lines))
    return paths


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _md_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return str(value)


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_comparison_table(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    name: str,
    columns: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.csv``: one row per variant, in the order given.

    ``columns`` picks and orders the keys (default: every key, in order of first
    appearance). Integers print with thousands separators (parameter counts), floats with
    4 decimals; a missing value prints as a dash in Markdown and empty in CSV.
    """
    if not rows:
        raise EvaluationError("comparison table has no rows")
    if not _SAFE_NAME.match(name):
        raise EvaluationError(
            f"table name {name!r} must be letters, digits, '.', '_' or '-' (it names files)"
        )
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    columns = [str(c) for c in columns]
    if not columns:
        raise EvaluationError("comparison table has no columns")
    unknown = [c for c in columns if not any(c in row for row in rows)]
    if unknown:
        raise EvaluationError(f"columns {unknown} appear in no row")

    out = Path(out_dir)
    md = [
        f"# {name}",
        "",
        *_md_table(columns, [[_md_value(r.get(c)) for c in columns] for r in rows]),
        "",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    paths = {"markdown": out / f"{name}.md", "csv": out / f"{name}.csv"}
    atomic_write_text(paths["markdown"], "\n".join(md))
    atomic_write_text(paths["csv"], buffer.getvalue())
    return paths
