"""Ablations: train and evaluate a grid of recipe overrides (or a list of recipes), one table.

In features mode every variant that keeps the inputs reads the same cached features: the
store key depends on backbone, weights, preprocessing and sampling, never on the head, so the
features are extracted once (by the first variant) and shared.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harkit.config import ConfigError
from harkit.data.datasets import DatasetConfig
from harkit.evaluate import write_comparison_table
from harkit.models.recipe import Recipe, load_recipe
from harkit.train.data import TrainData
from harkit.train.evaluate import evaluate_run
from harkit.train.trainer import train

__all__ = ["COLUMNS", "Variant", "ablate", "grid_variants", "parse_grid", "recipe_variants"]

log = logging.getLogger(__name__)

COLUMNS = (
    "variant", "recipe", "overrides", "params", "trainable", "top1", "top5",
    "mean_class_accuracy", "f1_macro", "best_val_acc", "epochs",
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One row of an ablation: a display name and its fully resolved recipe."""

    name: str
    recipe: Recipe
    overrides: tuple[str, ...] = ()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "variant"


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
    variants = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        extra = tuple(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        name = ",".join(extra)
        variants.append(Variant(name, load_recipe(recipe, [*overrides, *extra]), extra))
    return variants


def recipe_variants(names: Sequence[str], overrides: Sequence[str] = ()) -> list[Variant]:
    """One variant per recipe name or path (e.g. the ``ablations/*`` recipes)."""
    return [Variant(str(n), load_recipe(n, list(overrides)), tuple(overrides)) for n in names]


def ablate(
    variants: Sequence[Variant],
    dataset: DatasetConfig | TrainData,
    out_dir: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    clips: int = 1,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """Train and test every variant into ``out_dir/<variant>/``; write ``ablation.md/.csv``.

    Returns the table rows (``COLUMNS``). A variant whose run folder already holds a finished
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
        run_dir = out / _slug(variant.name)
        log.info("ablation variant %s -> %s", variant.name, run_dir)
        if (run_dir / "model.safetensors").is_file() and (run_dir / "run.json").is_file():
            info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        else:
            info = train(variant.recipe, dataset, run_dir, store=store, **train_kwargs)
        test = dataset.test if isinstance(dataset, TrainData) else dataset
        if test is None:
            raise ConfigError("ablation: the data has no test split to compare variants on")
        result = evaluate_run(run_dir, test, clips=clips, store=store)
        metrics = result.video or result.clip
        rows.append(
            {
                "variant": variant.name,
                "recipe": variant.recipe.name,
                "overrides": " ".join(variant.overrides),
                "params": info.get("parameters"),
                "trainable": info.get("trainable_parameters"),
                "top1": metrics.top1,
                "top5": metrics.top5,
                "mean_class_accuracy": metrics.mean_class_accuracy,
                "f1_macro": metrics.f1_macro,
                "best_val_acc": info.get("best_val_acc"),
                "epochs": info.get("epochs_run"),
            }
        )
        write_comparison_table(rows, out, "ablation", columns=COLUMNS)  # partial table as we go
    return rows
