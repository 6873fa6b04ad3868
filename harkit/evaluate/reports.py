"""Markdown / JSON / CSV reports: one evaluation, the mean over splits, ablation tables.

Units: every metric in a Markdown report table is a percentage (its header says ``(%)``);
JSON and CSV files keep fractions (0-1), as :class:`Metrics` holds them. Comparison tables
(ablations) hold fractions and say so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _num(value: float) -> str:
    """A fraction as a percentage without the sign, for tables whose header gives the unit."""
    return f"{100.0 * value:.2f}"


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


# Metric names in a recipe's ``reported`` keys -> harkit's headline metric. The papers'
# precision / recall / F1 are weighted averages (seed 004's recall equals its accuracy).
_PAPER_METRICS: dict[str, str] = {
    **{key: key for key in HEADLINE},
    "accuracy": "top1",
    "precision": "precision_weighted",
    "recall": "recall_weighted",
    "f1": "f1_weighted",
}
# ``<dataset>[_split<k>]_<metric>``, e.g. ``ucf101_top1``, ``hmdb51_split1_top1``.
_REPORTED_KEY = re.compile(r"^(?P<dataset>[a-z0-9]+)(?:_split(?P<split>\d+))?_(?P<metric>\w+)$")


def dataset_id(name: Any) -> str | None:
    """``'UCF-101'`` -> ``'ucf101'``: the dataset part of a reported key (None if empty)."""
    text = re.sub(r"[^a-z0-9]", "", str(name or "").lower())
    return text or None


@dataclass(frozen=True)
class PaperNumber:
    """One entry of a recipe's ``reported``: the paper's number for that configuration."""

    key: str
    value: float
    """As the paper prints it: a percentage."""
    dataset: str | None
    split: int | None
    """None: the paper's mean over its splits (or its only protocol)."""
    metric: str | None
    """The matching ``HEADLINE`` metric; None when harkit computes nothing comparable."""

    def matches(self, dataset: str | None, split: int | None) -> bool:
        """Whether an evaluation of ``dataset`` (split ``split``, None: a mean over splits)
        measures what this number measures."""
        if self.metric is None or self.dataset is None or self.dataset != dataset_id(dataset):
            return False
        # one split (a UCF50 fold of 3 test videos) is not the paper's mean over splits
        return self.split == split


def paper_numbers(reported: Mapping[str, float] | None) -> list[PaperNumber]:
    """Parse a recipe's ``reported`` mapping, in its order."""
    numbers = []
    for key, value in (reported or {}).items():
        match = _REPORTED_KEY.match(str(key).lower())
        if match is None:
            numbers.append(PaperNumber(str(key), float(value), None, None, None))
            continue
        split = match["split"]
        numbers.append(
            PaperNumber(
                str(key),
                float(value),
                match["dataset"],
                int(split) if split is not None else None,
                _PAPER_METRICS.get(match["metric"]),
            )
        )
    return numbers


def _paper_row(number: PaperNumber, harkit: Mapping[str, float] | None) -> dict[str, Any]:
    value = None if harkit is None or number.metric is None else harkit.get(number.metric)
    return {
        "key": number.key,
        "metric": number.metric,
        "paper": number.value / 100.0,
        "harkit": None if value is None else float(value),
    }


def compare_with_paper(
    reported: Mapping[str, float] | None,
    harkit: Mapping[str, float] | None,
    *,
    dataset: Any = None,
    split: Any = None,
) -> list[dict[str, Any]]:
    """One row per reported number: ``{'key', 'metric', 'paper', 'harkit'}`` as fractions.

    ``harkit`` holds headline metrics (``Metrics.headline()``) of an evaluation of
    ``dataset`` on ``split`` (None: a mean over splits). Its value goes beside the paper's
    only where both measure the same thing (same dataset; same split for a per-split
    number); otherwise ``harkit`` is None.
    """
    try:
        split_k = int(split) if split is not None else None
    except (TypeError, ValueError):
        split_k = None
    return [
        _paper_row(number, harkit if number.matches(dataset, split_k) else None)
        for number in paper_numbers(reported)
    ]


def _paper_lines(rows: Sequence[Mapping[str, Any]], dataset: Any) -> list[str]:
    if not rows:
        return []
    table = [
        [
            row["key"],
            HEADLINE_LABELS[row["metric"]] if row["metric"] else "–",
            _num(row["paper"]),
            "–" if row["harkit"] is None else _num(row["harkit"]),
        ]
        for row in rows
    ]
    return [
        "## Paper vs harkit",
        "",
        *_md_table(["Reported", "Metric", "paper (%)", "harkit (%)"], table),
        "",
        "A number without a split is the paper's mean over its splits. harkit's value is shown "
        f"where this evaluation ({dataset or 'dataset not recorded'}) measures the same thing.",
        "",
    ]


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
        text = _json_text(payload)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"split_info is not JSON-serialisable: {exc}") from exc
    atomic_write_text(paths["metrics"], text)

    atomic_write_text(
        paths["report"],
        _report_markdown(metrics, names, split_info, title, video_level, paper, training, coverage),
    )
    return paths


def _checkpoint_text(checkpoint: Mapping[str, Any], epochs: Any) -> str:
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
        + (_pct(val) + " (best val/acc)" if val is not None else "none (no validation split)"),
        f"- Checkpoint used: {_checkpoint_text(checkpoint, epochs)}, exported to "
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
        rows.append([label, *(_num(m.headline()[key]) for _, m in levels)])
    samples = ", ".join(f"{m.num_samples} ({m.level} level)" for _, m in levels)

    missing = _without_samples(metrics, names)
    covered = []
    if coverage is not None:
        covered = [f"Test videos: {coverage_text(coverage)}.", ""]
        if coverage.get("skipped"):
            covered += [f"**Warning: {coverage_text(coverage)}; every metric below is over "
                        f"the {coverage.get('evaluated')} evaluated videos only.**", ""]  # fmt: skip
    mean_class = (
        "Mean class accuracy is the mean over classes of the share of each class's samples "
        "classified correctly"
    )
    if missing:
        mean_class += (
            f", over the {len(names) - len(missing)} of {len(names)} classes with test samples "
            f"({len(missing)} without any are left out: see the per-class table)"
        )
    lines = [f"# {title}", "", "## Data", "", *_split_lines(split_info), "", *covered,
             *_training_lines(training), "## Summary", ""]  # fmt: skip
    lines += _md_table(header, rows)
    lines += [
        "",
        f"Samples: {samples}. {mean_class}. Macro averages weigh every class equally; weighted "
        "averages weigh classes by their number of samples.",
        "",
        *_paper_lines(paper, split_info.get("dataset")),
        f"## Per-class results ({metrics.level} level, %)",
        "",
    ]
    per_class_rows = [
        [
            name,
            row.support,
            _num(row.accuracy),
            _num(row.precision),
            _num(row.recall),
            _num(row.f1),
        ]
        if row.support
        else [f"{name} (no test sample)", 0, "–", _num(row.precision), "–", "–"]
        for name, row in zip(names, metrics.per_class, strict=True)
    ]
    lines += _md_table(
        ["Class", "Support", "Accuracy (%)", "Precision (%)", "Recall (%)", "F1 (%)"],
        per_class_rows,
    )
    if missing:
        lines += ["", f"{len(missing)} of {len(names)} classes have no test sample "
                  f"({', '.join(missing)}): their accuracy, recall and F1 are undefined (–), "
                  "and mean class accuracy leaves them out."]  # fmt: skip
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
        writer.writerow([
            video, group or "", classes[int(label)], classes[int(best[0])],
            f"{row[best[0]]:.4f}", int(best[0] == label),
            ";".join(f"{classes[int(c)]}:{row[c]:.4f}" for c in best),
        ])  # fmt: skip
    return atomic_write_text(path, buffer.getvalue())


def write_splits_report(
    out_dir: str | os.PathLike[str],
    per_split: Mapping[str | int, Metrics],
    *,
    title: str = "Results over splits",
    reported: Mapping[str, float] | None = None,
    dataset: str | None = None,
    training: Mapping[str | int, Mapping[str, Any]] | None = None,
    clips: int | None = None,
    name: str = "splits",
    coverage: Mapping[str | int, Mapping[str, Any]] | None = None,
    held_out: Mapping[str | int, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.json`` (default ``splits``): one row per split, then
    the mean and std. Both say which splits the mean is over, whether the metrics are clip-
    or video-level (the ``level`` of ``per_split``) and, given ``clips``, the clips per video.
    ``coverage`` (per split, as :func:`write_report` takes it) flags splits whose metrics
    leave out skipped test videos.

    ``reported`` (the recipe's paper numbers) adds a "Paper vs harkit" table when
    ``dataset`` names the data the splits are of (see :func:`compare_with_paper`).
    ``training`` (per split, as :func:`write_report` takes it) adds a table of how each
    split's tested weights were trained. ``held_out`` (per split, the groups its test side
    holds: a cross-validation fold's person or source video) adds a column naming them.
    """
    summary = average_over_splits(per_split)
    levels = sorted({m.level for m in per_split.values()})
    if len(levels) != 1:
        raise EvaluationError(f"splits mix clip- and video-level metrics: {levels}")
    level = levels[0]
    summary["level"] = level
    summary["clips_per_video"] = clips
    trained = {str(k): dict(v) for k, v in (training or {}).items()}
    unknown = sorted(set(trained) - set(summary["splits"]))
    if unknown:
        raise EvaluationError(f"training given for splits {unknown} that have no metrics")
    if trained:
        summary["training"] = trained
    covered = {str(k): {**v, "text": coverage_text(v)} for k, v in (coverage or {}).items()}
    if covered:
        summary["coverage"] = covered
    paper = []
    for number in paper_numbers(reported):
        # A paper mean goes beside harkit's mean, a paper split-k number beside harkit's split k.
        source = (
            summary["mean"] if number.split is None else summary["per_split"].get(str(number.split))
        )
        paper.append(_paper_row(number, source if number.matches(dataset, number.split) else None))
    if paper:
        summary["paper"] = paper
    out = Path(out_dir)
    # top-k is top-min(5, classes): name the k actually computed (top-3 with 3 classes)
    top_k = min(m.top_k for m in per_split.values()) if per_split else 5
    labels = {**HEADLINE_LABELS, "top5": f"Top-{top_k} accuracy"}
    held = {str(k): [str(g) for g in v] for k, v in (held_out or {}).items()}
    if held:
        summary["held_out"] = held
    header = ["Split", *(["Held-out groups"] if held else []),
              *(f"{labels[key]} (%)" for key in HEADLINE)]  # fmt: skip
    groups = (lambda split: [", ".join(held.get(split, [])) or "–"]) if held else (lambda _: [])
    rows: list[list[Any]] = [
        [split, *groups(split), *(_num(summary["per_split"][split][key]) for key in HEADLINE)]
        for split in summary["splits"]
    ]
    blank = [""] if held else []
    rows.append(["**mean**", *blank, *(f"**{_num(summary['mean'][key])}**" for key in HEADLINE)])
    rows.append(["std", *blank, *(_num(summary["std"][key]) for key in HEADLINE)])
    mean, std = summary["mean"]["top1"], summary["std"]["top1"]
    listed = ", ".join(summary["splits"])
    measured = f"{level}-level metrics"
    if clips is not None:
        measured += f", {clips} clip{'s' if clips != 1 else ''} per video"
        if level == "video":
            measured += " (their class probabilities averaged)"
    lines = [
        f"# {title} {listed}",
        "",
        f"Mean over splits {listed}: top-1 {_pct(mean)} ± {_pct(std)} over "
        f"{summary['num_splits']} split(s) (population std); {measured}.",
        "",
        *(
            f"**Warning: split {k}: {c['text']}; its metrics are over the evaluated videos "
            "only.**\n"
            for k, c in covered.items()
            if c.get("skipped")
        ),
        *_md_table(header, rows),
        "",
        *_paper_lines(paper, dataset),
    ]
    if trained:
        table = []
        for split in summary["splits"]:
            t = trained.get(split, {})
            epochs, val = t.get("epochs_trained"), t.get("val_acc")
            table.append([
                split,
                "–" if epochs is None else epochs,
                "–" if val is None else _num(val),
                _checkpoint_text(t.get("checkpoint") or {}, epochs) if t else "–",
            ])  # fmt: skip
        lines += [
            "## Training per split",
            "",
            *_md_table(["Split", "Epochs trained", "Validation accuracy (%)", "Checkpoint used"],
                       table),
            "",
        ]  # fmt: skip
    if not _SAFE_NAME.match(name):
        raise EvaluationError(f"report name {name!r}: expected letters, digits, '.', '_', '-'")
    paths = {"report": out / f"{name}.md", "json": out / f"{name}.json"}
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
    note: str | None = None,
) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.csv``: one row per variant, in the order given.

    ``note`` is a line under the Markdown title (say the unit of the metric columns there).

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
        *([note, ""] if note else []),
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
