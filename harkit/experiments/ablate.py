"""Ablations: train and evaluate a grid of recipe overrides (or a list of recipes), one table.

In features mode every variant that keeps the inputs reads the same cached features: the
store key depends on backbone, weights, preprocessing and sampling, never on the head, so the
features are extracted once (by the first variant) and shared.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, InstanceOf

from harkit._lazy import validated
from harkit.arguments import PathArg
from harkit.config import ConfigError
from harkit.data.datasets import DatasetConfig
from harkit.evaluate import HEADLINE, write_comparison_table
from harkit.evaluate.paper import paper_numbers
from harkit.experiments.evaluate import MAX_VIEWS, evaluate_run
from harkit.models.recipe import Recipe, load_recipe
from harkit.train.data import TrainData
from harkit.train.run import read_run_info
from harkit.train.run_info import RunInfo
from harkit.train.trainer import train

__all__ = [
    "COLUMNS",
    "Variant",
    "ablate",
    "grid_variants",
    "parse_grid",
    "recipe_variants",
    "variant_dir",
]

log = logging.getLogger(__name__)

COLUMNS = (
    "variant",
    "recipe",
    "overrides",
    "params",
    "trainable",
    "top1",
    "paper_top1",
    "top5",
    "mean_class_accuracy",
    "f1_macro",
    "best_val_acc",
    "epochs",
    "paper_source",
)
"""Always there; a ``paper_<metric>`` column (and harkit's ``<metric>``) is added for any
other metric a variant's paper reports for the data at hand. Paper values are fractions,
like harkit's; ``paper_source`` names the recipe's ``reported`` keys they come from."""


TABLE_NOTE = (
    "Metric columns (top1, top5, accuracy, precision, recall, F1, best_val_acc and their "
    "paper_ values) are fractions (0-1); params are counts."
)


@dataclass(frozen=True)
class Variant:
    """One row of an ablation: a display name and its fully resolved recipe."""

    name: str
    recipe: Recipe
    overrides: tuple[str, ...] = ()


def variant_dir(out_dir: str | os.PathLike[str], name: str) -> Path:
    """The run folder :func:`ablate` gives the variant ``name`` under ``out_dir``."""
    return Path(out_dir) / (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "variant")


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["head.cell=gru,lstm", "head.hidden=128,256"]`` -> ``{key: [values]}``.

    Commas inside brackets or braces do not split, so ``head.hidden=[128,128],256`` gives
    the two values ``[128,128]`` and ``256``.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid '{item}' must look like key.sub=value1,value2")
        values, depth, current = [], 0, ""
        for char in raw:
            depth += (char in "[{") - (char in "]}")
            if char == "," and depth == 0:
                values.append(current)
                current = ""
            else:
                current += char
        values.append(current)
        grid[key] = [v.strip() for v in values if v.strip()]
    return grid


def grid_variants(
    recipe: str | os.PathLike[str],
    grid: Mapping[str, Sequence[str]],
    overrides: Sequence[str] = (),
) -> list[Variant]:
    """The cartesian product of ``grid`` over ``recipe`` (after ``overrides``), validated."""
    if not grid:
        return [Variant(Path(str(recipe)).stem, load_recipe(recipe, list(overrides)))]
    keys = list(grid)
    base = load_recipe(recipe, list(overrides)).model_dump(exclude={"reported"})
    variants = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        extra = tuple(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        name = ",".join(extra)
        resolved = load_recipe(recipe, [*overrides, *extra])
        if resolved.model_dump(exclude={"reported"}) != base:
            # The paper's numbers are for the recipe as it is, not for a grid cell changing it.
            resolved = resolved.model_copy(update={"reported": {}})
        variants.append(Variant(name, resolved, extra))
    return variants


def recipe_variants(names: Sequence[str], overrides: Sequence[str] = ()) -> list[Variant]:
    """One variant per recipe name or path (e.g. the ``ablations/*`` recipes)."""
    return [Variant(str(n), load_recipe(n, list(overrides)), tuple(overrides)) for n in names]


@validated
def ablate(
    variants: Sequence[InstanceOf[Variant]],
    dataset: InstanceOf[DatasetConfig] | InstanceOf[TrainData],
    out_dir: PathArg,
    *,
    store: PathArg | None = None,
    clips: Annotated[int, Field(ge=1, le=MAX_VIEWS)] = 1,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """Train and test every variant into ``out_dir/<variant>/``; write ``ablation.md/.csv``.

    Returns the table rows (``COLUMNS`` and the paper's other metrics). A variant whose run folder already holds a finished
    model is evaluated again, not retrained, so an interrupted ablation picks up where it was.
    """
    if not variants:
        raise ConfigError("ablation: no variants (give --grid or recipe names)")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"ablation: variant names repeat: {names}")
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for variant in variants:
        run_dir = variant_dir(out, variant.name)
        log.info("ablation variant %s -> %s", variant.name, run_dir)
        if (run_dir / "model.safetensors").is_file() and (run_dir / "run.json").is_file():
            info = read_run_info(run_dir)
        else:
            trained = train(variant.recipe, dataset, run_dir, store=store, **train_kwargs).info
            if trained is None:  # a distributed run's other processes: the first one tests
                continue
            info = trained
        test = dataset.test if isinstance(dataset, TrainData) else dataset
        if test is None:
            raise ConfigError("ablation: the data has no test split to compare variants on")
        result = evaluate_run(run_dir, test, clips=clips, store=store)
        metrics = result.video or result.clip
        row = {
            "variant": variant.name,
            "recipe": variant.recipe.name,
            "overrides": " ".join(variant.overrides),
            "params": info.parameters,
            "trainable": info.trainable_parameters,
            **metrics.headline(),  # every metric, for the columns a paper adds
            "paper_top1": None,
            "best_val_acc": info.best_score,
            "epochs": info.epochs_run,
        }
        row.update(_paper_columns(variant.recipe, *_evaluated_on(info, dataset)))
        rows.append(row)
        write_comparison_table(rows, out, "ablation", columns=_columns(rows), note=TABLE_NOTE)
        # written after every variant: an interrupted ablation keeps its finished rows
    return rows


def _evaluated_on(info: RunInfo, data: DatasetConfig | TrainData) -> tuple[str | None, int | None]:
    """``(dataset, split)`` the variant was tested on, as a recipe's ``reported`` keys name it."""
    meta = info.dataset or (data.info.dataset if isinstance(data, TrainData) else None)
    if meta is not None:
        kind, name, split = meta.kind, meta.name, meta.split
    elif isinstance(data, DatasetConfig):
        kind, name, split = data.kind, None, data.split
    else:
        return None, None
    # Official kinds name the benchmark; a folder or CSV is known by its index name.
    return (kind if kind in ("ucf101", "hmdb51", "ucf50") else name), split


def _paper_columns(recipe: Recipe, dataset: Any, split: Any) -> dict[str, Any]:
    """``paper_<metric>`` for the paper's numbers of this data, and ``paper_source``."""
    try:
        split_k = int(split) if split is not None else None
    except (TypeError, ValueError):
        split_k = None
    numbers = paper_numbers(recipe.reported)
    # A number for this very split; else the paper's mean over splits, labelled as such.
    matched = [n for n in numbers if n.matches(dataset, split_k)]
    matched += [n for n in numbers if split_k is not None and n.matches(dataset, None)]
    cols: dict[str, Any] = {}
    sources = []
    for number in matched:
        column = f"paper_{number.metric}"
        if column in cols:
            continue
        cols[column] = number.value / 100.0
        exact = number.split == split_k
        sources.append(number.key if exact else f"{number.key} (paper mean over splits)")
    cols["paper_source"] = " ".join(sources) or None
    return cols


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``COLUMNS`` plus harkit / paper column pairs for the extra metrics some paper reports."""
    columns = list(COLUMNS)
    extra: list[str] = []
    for metric in HEADLINE:
        paper = f"paper_{metric}"
        if paper in columns or not any(paper in row for row in rows):
            continue
        if metric in columns:
            columns.insert(columns.index(metric) + 1, paper)
        else:
            extra += [metric, paper]
    at = columns.index("f1_macro") + 1
    columns[at:at] = extra
    return columns
