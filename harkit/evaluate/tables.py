"""Tables over several evaluations: the mean over splits and ablation comparisons.

Split tables print percentages (their headers say ``(%)``); comparison tables (ablations) hold
fractions and say so in their note.
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
from harkit.evaluate.markdown import (
    check_file_name,
    json_text,
    md_table,
    percent_number,
    percent_text,
)
from harkit.evaluate.metrics import HEADLINE, HEADLINE_LABELS, Metrics
from harkit.evaluate.paper import paper_lines, paper_numbers, paper_row
from harkit.evaluate.reports import checkpoint_text, coverage_text
from harkit.io import atomic_write_text

__all__ = ["average_over_splits", "write_comparison_table", "write_splits_report"]


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
    ``coverage`` (per split, as :func:`~harkit.evaluate.reports.write_report` takes it) flags splits whose metrics
    leave out skipped test videos.

    ``reported`` (the recipe's paper numbers) adds a "Paper vs harkit" table when
    ``dataset`` names the data the splits are of (see :func:`~harkit.evaluate.paper.compare_with_paper`).
    ``training`` (per split, as :func:`~harkit.evaluate.reports.write_report` takes it) adds a table of how each
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
        paper.append(paper_row(number, source if number.matches(dataset, number.split) else None))
    if paper:
        summary["paper"] = paper
    out = Path(out_dir)
    # top-k is top-min(5, classes): name the k actually computed (top-3 with 3 classes)
    top_k = min(m.top_k for m in per_split.values()) if per_split else 5
    labels = {**HEADLINE_LABELS, "top5": f"Top-{top_k} accuracy"}
    held = {str(k): [str(g) for g in v] for k, v in (held_out or {}).items()}
    if held:
        summary["held_out"] = held
    header = [
        "Split",
        *(["Held-out groups"] if held else []),
        *(f"{labels[key]} (%)" for key in HEADLINE),
    ]
    groups = (lambda split: [", ".join(held.get(split, [])) or "–"]) if held else (lambda _: [])
    rows: list[list[Any]] = [
        [
            split,
            *groups(split),
            *(percent_number(summary["per_split"][split][key]) for key in HEADLINE),
        ]
        for split in summary["splits"]
    ]
    blank = [""] if held else []
    rows.append(
        ["**mean**", *blank, *(f"**{percent_number(summary['mean'][key])}**" for key in HEADLINE)]
    )
    rows.append(["std", *blank, *(percent_number(summary["std"][key]) for key in HEADLINE)])
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
        f"Mean over splits {listed}: top-1 {percent_text(mean)} ± {percent_text(std)} over "
        f"{summary['num_splits']} split(s) (population std); {measured}.",
        "",
        *(
            f"**Warning: split {k}: {c['text']}; its metrics are over the evaluated videos "
            "only.**\n"
            for k, c in covered.items()
            if c.get("skipped")
        ),
        *md_table(header, rows),
        "",
        *paper_lines(paper, dataset),
    ]
    if trained:
        table = []
        for split in summary["splits"]:
            t = trained.get(split, {})
            epochs, val = t.get("epochs_trained"), t.get("val_acc")
            table.append(
                [
                    split,
                    "–" if epochs is None else epochs,
                    "–" if val is None else percent_number(val),
                    checkpoint_text(t.get("checkpoint") or {}, epochs) if t else "–",
                ]
            )
        lines += [
            "## Training per split",
            "",
            *md_table(
                ["Split", "Epochs trained", "Validation accuracy (%)", "Checkpoint used"], table
            ),
            "",
        ]
    check_file_name(name, "report name")
    paths = {"report": out / f"{name}.md", "json": out / f"{name}.json"}
    atomic_write_text(paths["json"], json_text(summary))
    atomic_write_text(paths["report"], "\n".join(lines))
    return paths


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
    check_file_name(name, "table name")
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
        *md_table(columns, [[_md_value(r.get(c)) for c in columns] for r in rows]),
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
