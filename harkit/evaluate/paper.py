"""The papers' numbers (a recipe's ``reported``) beside harkit's, where both measure the same."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harkit.evaluate.markdown import md_table, percent_number
from harkit.evaluate.metrics import HEADLINE, HEADLINE_LABELS

__all__ = [
    "PaperNumber",
    "compare_with_paper",
    "dataset_id",
    "paper_lines",
    "paper_numbers",
    "paper_row",
]


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


def paper_row(number: PaperNumber, harkit: Mapping[str, float] | None) -> dict[str, Any]:
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
        paper_row(number, harkit if number.matches(dataset, split_k) else None)
        for number in paper_numbers(reported)
    ]


def paper_lines(rows: Sequence[Mapping[str, Any]], dataset: Any) -> list[str]:
    if not rows:
        return []
    table = [
        [
            row["key"],
            HEADLINE_LABELS[row["metric"]] if row["metric"] else "–",
            percent_number(row["paper"]),
            "–" if row["harkit"] is None else percent_number(row["harkit"]),
        ]
        for row in rows
    ]
    return [
        "## Paper vs harkit",
        "",
        *md_table(["Reported", "Metric", "paper (%)", "harkit (%)"], table),
        "",
        "A number without a split is the paper's mean over its splits. harkit's value is shown "
        f"where this evaluation ({dataset or 'dataset not recorded'}) measures the same thing.",
        "",
    ]
