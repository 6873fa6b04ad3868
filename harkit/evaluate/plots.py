"""Confusion matrix pictures, readable from 4 to 101+ classes, drawn without a display."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from harkit.evaluate.errors import EvaluationError
from harkit.io import atomic_output

# Above this many classes the cells are too small to hold numbers.
MAX_ANNOTATED_CLASSES = 30
INCHES_PER_CLASS = 0.18


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall per true class); rows of absent classes stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def _layout(num_classes: int) -> tuple[float, float, float]:
    """(matrix side in inches, tick label font size, cell number font size)."""
    if num_classes <= 10:
        return max(4.0, 0.9 * num_classes), 10.0, 10.0
    if num_classes <= MAX_ANNOTATED_CLASSES:
        return 0.42 * num_classes, 7.0, 6.0  # cells wide enough for "0.04" at 6 pt
    return INCHES_PER_CLASS * num_classes, 6.5, 0.0  # 6.5 pt fits a 0.18 in (13 pt) row


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    normalize: bool = False,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Draw the count matrix ``cm`` (rows = true class) as a PNG at ``path``, atomically.

    With ``normalize`` each row shows the share of that class's samples per predicted class.
    The title carries the accuracy (trace / total of the counts).
    """
    counts = np.asarray(cm)
    n = len(classes)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise EvaluationError(
            f"confusion matrix of shape {counts.shape} does not fit {n} class names"
        )
    if n == 0:
        raise EvaluationError("no classes to plot")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise EvaluationError("confusion matrix must hold finite, non-negative counts")
    total = counts.sum()
    accuracy = float(np.trace(counts) / total) if total > 0 else 0.0
    values = normalize_rows(counts) if normalize else counts.astype(np.float64)

    side, tick_size, cell_size = _layout(n)
    names = [str(c) for c in classes]
    # Fixed margins sized from the longest label: one draw, no layout engine pass (which
    # doubles the drawing time at 101 classes).
    label_in = max(len(c) for c in names) * tick_size * 0.62 / 72.0
    left = bottom = label_in + 0.55
    top, right = 0.5, 1.3
    width, height = left + side + right, bottom + side + top
    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.15) / width, bottom / height, 0.2 / width, side / height))
    image = ax.imshow(
        values,
        cmap="Blues",
        interpolation="nearest",
        aspect="auto",
        vmin=0.0,
        vmax=1.0 if normalize else max(float(values.max()), 1.0),
    )
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.ax.tick_params(labelsize=max(tick_size, 7.0))
    colorbar.set_label("share of true class" if normalize else "clips")

    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=names, rotation=90, fontsize=tick_size)
    ax.set_yticks(ticks, labels=names, fontsize=tick_size)
    ax.tick_params(length=2 if n > MAX_ANNOTATED_CLASSES else 3.5)
    label_size = 10 if n <= MAX_ANNOTATED_CLASSES else 14
    ax.set_xlabel("Predicted class", fontsize=label_size)
    ax.set_ylabel("True class", fontsize=label_size)
    kind = "row-normalised" if normalize else "counts"
    heading = title or "Confusion matrix"
    ax.set_title(
        f"{heading} ({kind}), accuracy {accuracy:.2%}",
        fontsize=12 if n <= MAX_ANNOTATED_CLASSES else 16,
    )

    if cell_size > 0:
        threshold = (values.max() if values.size else 0.0) / 2.0
        for i in range(n):
            for j in range(n):
                if n > 10 and counts[i, j] == 0:
                    continue  # empty cells stay blank so the errors stand out
                value = values[i, j]
                text = f"{value:.2f}" if normalize else f"{int(counts[i, j])}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=cell_size,
                    color="white" if value > threshold else "black",
                )

    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
