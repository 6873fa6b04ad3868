"""``harkit reproduce``: a paper's table, paper vs harkit, over the official splits.

One recipe (and with ``ablations`` every ``harkit/recipes/ablations/*.yaml`` whose ``base:`` is it)
is trained and evaluated on each official split of a benchmark into ``OUT/<recipe>/split<k>/``;
the features of features-mode recipes are extracted once, up front, into the shared store.
``OUT/reproduce.md/.json/.csv`` then hold one row per recipe: the paper's number, harkit's
mean ± std over the splits, each split's number and a relative link to its ``report.md``.

Resumable: a split folder holding ``model.safetensors`` and its report is finished and
only read; one with the model but no report is evaluated; one with ``checkpoints/last.ckpt``
but no model resumes its training; anything else trains from the start. A finished or
interrupted run trained with another recipe (other ``--set`` overrides) is refused, never
silently mixed into the table.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, InstanceOf

from harkit._lazy import validated
from harkit.arguments import Overrides, PathArg
from harkit.config import ConfigError, load_yaml
from harkit.data.datasets import (
    DatasetConfig,
    load_index,
    resolve_kind,
)
from harkit.data.splits import cross_validation_name
from harkit.evaluate.metrics import Metrics
from harkit.evaluate.paper import paper_numbers
from harkit.evaluate.tables import write_splits_report
from harkit.experiments.evaluate import MAX_VIEWS, evaluate_run, training_summary
from harkit.experiments.splits import plan_splits
from harkit.io import atomic_write_text
from harkit.models.recipe import Recipe, _resolve, load_recipe, recipe_dir
from harkit.train.run import RunError, RunPaths, read_recipe, read_run_info

__all__ = ["Entry", "find_ablations", "reproduce", "split_state"]

log = logging.getLogger(__name__)

TABLE = "reproduce"
"""``OUT/reproduce.md``, ``.json`` and ``.csv``."""


@dataclass
class Entry:
    """One row of the table: a recipe (the base or one of its ablations) and its splits."""

    name: str
    role: str  # "recipe" or "ablation"
    source: Path
    recipe: Recipe
    reported: dict[str, float]
    overridden: bool
    per_split: dict[int, dict[str, Any]] = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "recipe"


def find_ablations(recipe: str | os.PathLike[str]) -> list[Path]:
    """The ``ablations/*.yaml`` files whose ``base:`` is ``recipe`` (name or path), by name.

    Looks in ``ablations/`` beside the recipe's file and in the built-in recipes' folder;
    a file's ``base:`` is resolved as :func:`harkit.models.recipe.load_recipe` resolves it.
    """
    target = _resolve(recipe).resolve()
    folders = dict.fromkeys(
        p.resolve() for p in (target.parent / "ablations", recipe_dir() / "ablations") if p.is_dir()
    )
    found: dict[Path, None] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            base = load_yaml(path).get("base")
            if not isinstance(base, str):
                continue
            try:
                resolved = _resolve(base, path.parent).resolve()
            except ConfigError:
                continue  # a base that does not exist is not this recipe
            if resolved == target:
                found[path.resolve()] = None
    return sorted(found, key=lambda p: p.stem)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _recipe_changes(saved: Recipe, given: Recipe) -> list[str]:
    a, b = _flat(saved.model_dump(mode="json")), _flat(given.model_dump(mode="json"))
    return [
        f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}"
        for k in sorted({**a, **b})
        if a.get(k) != b.get(k)
    ]


def split_state(split_dir: str | os.PathLike[str]) -> str:
    """``finished`` (model + report), ``trained`` (model, no report), ``interrupted``
    (``last.ckpt``, no model) or ``new``."""
    paths = RunPaths(Path(split_dir))
    model = (paths.root / "model.safetensors").is_file()
    report = (paths.report / "report.md").is_file() and (paths.report / "metrics.json").is_file()
    if model and report:
        return "finished"
    if model:
        return "trained"
    if paths.last_ckpt.is_file():
        return "interrupted"
    return "new"


def _check_run(split_dir: Path, recipe: Recipe, config: DatasetConfig) -> None:
    """A run folder reproduce continues must hold this recipe trained on this split."""
    paths = RunPaths(split_dir)
    changes = _recipe_changes(read_recipe(paths), recipe)
    if changes:
        raise RunError(
            f"{split_dir} was trained with another recipe ({'; '.join(changes[:4])}"
            f"{'; ...' if len(changes) > 4 else ''}); rerun with the same --set overrides "
            "or pick another --out"
        )
    if not paths.info.is_file():
        return
    recorded = read_run_info(split_dir).dataset
    root = str(Path(os.path.abspath(config.root)))
    if recorded is not None and (
        recorded.root not in (None, root) or recorded.split not in (None, config.split)
    ):
        raise RunError(
            f"{split_dir} was trained on {recorded.root} split {recorded.split}, "
            f"not {root} split {config.split}; pick another --out"
        )


def _read_metrics(split_dir: Path) -> Metrics:
    path = RunPaths(split_dir).report / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Metrics.from_dict(data.get("video_level") or data["metrics"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path}: cannot read the split's metrics ({exc})") from exc


def _evaluated_clips(split_dir: Path) -> int | None:
    try:
        data = json.loads((RunPaths(split_dir).report / "metrics.json").read_text(encoding="utf-8"))
        return int(data["split_info"]["clips per video"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _run_split(
    entry: Entry,
    config: DatasetConfig,
    split_dir: Path,
    *,
    store: Path | None,
    clips: int,
    train_kwargs: Mapping[str, Any],
) -> tuple[str, Metrics]:
    """Bring one split to finished; returns what was done and its metrics."""
    from harkit.train.trainer import train

    state = split_state(split_dir)
    if state != "new":
        _check_run(split_dir, entry.recipe, config)
    if state == "finished":
        if _evaluated_clips(split_dir) == clips:
            return "already done", _read_metrics(split_dir)
        state = "trained"  # evaluated with another --clips: evaluate again, keep the model
    if state == "interrupted":
        log.info(
            "%s split %d: resuming from %s", entry.name, config.split, RunPaths(split_dir).last_ckpt
        )
        train(entry.recipe, config, split_dir, store=store, resume=True, **train_kwargs)
        done = "resumed"
    elif state == "new":
        log.info("%s split %d: training into %s", entry.name, config.split, split_dir)
        train(entry.recipe, config, split_dir, store=store, **train_kwargs)
        done = "trained"
    else:
        done = "evaluated"
    result = evaluate_run(split_dir, config, clips=clips, store=store)
    return done, result.video if result.video is not None else result.clip


def _extract_once(
    entries: Sequence[Entry],
    config: DatasetConfig,
    splits: Sequence[int],
    store: Path,
    progress: bool,
    flow_root: str | os.PathLike[str] | None = None,
) -> dict[str, int]:
    """Extract every features-mode recipe's features for every video of the chosen splits.

    Recipes that share inputs share a store (its key ignores the head), and a video set
    already handled is not listed again, so each video is decoded once per distinct input.
    """
    from harkit.features.pipeline import dataset_video_root, extract_features

    totals = {"videos": 0, "extracted": 0, "existing": 0, "failed": 0}
    seen: set[tuple[str, frozenset[str]]] = set()
    for entry in entries:
        recipe = entry.recipe
        if recipe.mode != "features":
            continue
        inputs = json.dumps(recipe.input.model_dump(mode="json"), sort_keys=True)
        for k in splits:
            split_config = config.model_copy(update={"split": k})
            index = load_index(split_config)
            key = (inputs, frozenset(str(item.path) for item in index))
            if key in seen:
                continue
            seen.add(key)
            report = extract_features(
                index,
                recipe.input.features,
                store,
                recipe.input.sampling,
                recipe.input.transform,
                flow_method=recipe.input.flow_method,
                flow_root=flow_root,
                video_root=dataset_video_root(split_config),
                progress=progress,
            )
            for name in totals:
                totals[name] += int(getattr(report, name))
    return totals


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _paper(entry: Entry, kind: str) -> tuple[float | None, str | None]:
    """The paper's top-1 for this dataset (a fraction) and its ``reported`` key; the mean
    over splits beats a single split's number."""
    numbers = [
        n for n in paper_numbers(entry.reported) if n.metric == "top1" and n.matches(kind, n.split)
    ]
    numbers.sort(key=lambda n: n.split is not None)
    if not numbers:
        return None, None
    return numbers[0].value / 100.0, numbers[0].key


def _row(entry: Entry, kind: str, splits: Sequence[int]) -> dict[str, Any]:
    import numpy as np

    paper, source = _paper(entry, kind)
    done = [entry.per_split[k]["top1"] for k in splits if k in entry.per_split]
    row: dict[str, Any] = {
        "recipe": entry.name,
        "role": entry.role,
        "overridden": entry.overridden,
        "paper_top1": paper,
        "paper_source": source,
        # a paper number measures the recipe as written, not an overridden one
        "paper_comparable": paper is not None and not entry.overridden,
        "top1_mean": float(np.mean(done)) if done else None,
        "top1_std": float(np.std(done)) if done else None,
        "splits_done": len(done),
        "splits_total": len(splits),
    }
    for k in splits:
        cell = entry.per_split.get(k, {})
        row[f"split{k}_top1"] = cell.get("top1")
        row[f"split{k}_report"] = cell.get("report")
        row[f"split{k}_status"] = cell.get("status")
    return row


def _write_table(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Path]:
    splits = meta["splits"]
    paths = {ext: out / f"{TABLE}.{ext}" for ext in ("md", "json", "csv")}
    atomic_write_text(paths["json"], json.dumps({**meta, "rows": rows}, indent=1) + "\n")

    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    atomic_write_text(paths["csv"], buffer.getvalue())

    header = [
        "recipe",
        "paper top-1 (%)",
        "harkit top-1 (%), mean ± std",
        *(f"split {k}" for k in splits),
    ]
    lines = [
        f"# Reproduction of {meta['recipe']} on {meta['dataset']['kind'].upper()}",
        "",
        f"Data: `{meta['dataset']['root']}`, "
        + (
            f"{meta['cross_validation']} folds"
            if meta.get("cross_validation")
            else "official splits"
        )
        + f" {', '.join(map(str, splits))} "
        f"(harkit's number is the mean over them, population std; video level where several "
        f"clips per video were tested). Written {meta['written']}.",
        "",
    ]
    used = meta.get("used") or {}
    if used:
        lines += [
            "Videos used: "
            + "; ".join(
                f"split {k}: {u.get('classes')} classes, {u.get('train', 0)} train"
                + (f" + {u['val']} validation" if u.get("val") else "")
                + f", {u.get('test', 0)} test"
                for k, u in used.items()
            )
            + ".",
            "",
        ]
    if meta["overrides"]:
        lines += [
            f"**Recipe overridden** (`{' '.join(meta['overrides'])}`, applied to every run): "
            "the paper's numbers are of the recipe as written and are shown as a reference "
            "only, in brackets.",
            "",
        ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        paper = _pct(row["paper_top1"])
        if row["paper_top1"] is not None:
            if row["paper_source"] and "_split" in row["paper_source"]:
                paper += f" ({row['paper_source'].split('_')[1].replace('split', 'split ')})"
            if not row["paper_comparable"]:
                paper = f"[{paper}]"
        mean = (
            "–"
            if row["top1_mean"] is None
            else f"{_pct(row['top1_mean'])} ± {_pct(row['top1_std'])}"
        )
        if row["splits_done"] < row["splits_total"]:
            mean += f" ({row['splits_done']} of {row['splits_total']} splits)"
        name = row["recipe"] + (" (ablation)" if row["role"] == "ablation" else "")
        if row["overridden"]:
            name += " (overridden)"
        cells = [
            f"[{_pct(row[f'split{k}_top1'])}]({row[f'split{k}_report']})"
            if row[f"split{k}_report"]
            else "pending"
            for k in splits
        ]
        lines.append("| " + " | ".join([name, paper, mean, *cells]) + " |")
    lines += [
        "",
        "A paper number marked (split k) is the paper's for that split only; the others are "
        "its mean over the official splits. Each split's number links to its report.",
        "",
    ]
    atomic_write_text(paths["md"], "\n".join(lines))
    return paths


@validated
def reproduce(
    recipe: PathArg,
    dataset: InstanceOf[DatasetConfig],
    out_dir: PathArg,
    *,
    splits: Sequence[Annotated[int, Field(ge=1)]] | None = None,
    store: PathArg | None = None,
    ablations: bool = False,
    overrides: Overrides = (),
    clips: Annotated[int, Field(ge=1, le=MAX_VIEWS)] = 1,
    flow_root: PathArg | None = None,
    progress: bool = True,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train and evaluate ``recipe`` (and its ablations) on every official split of
    ``dataset`` (or ``splits``) into ``out_dir``; write the table; return its JSON.

    ``store`` (default ``out_dir/features``) holds the features of features-mode recipes.
    ``flow_root``: the ``harkit flow`` files flow-stream sources read. ``overrides``
    (``key=value``) apply to every run. ``train_kwargs`` go to
    :func:`harkit.train.trainer.train` (devices, accelerator, ...).
    """
    sources = [(_resolve(recipe), "recipe")]  # a wrong recipe name first, before the data
    if ablations:
        sources += [(path, "ablation") for path in find_ablations(recipe)]
    entries: list[Entry] = []
    for path, role in sources:
        plain = load_recipe(path)
        given = load_recipe(path, list(overrides))
        overridden = given.model_dump(exclude={"reported"}) != plain.model_dump(
            exclude={"reported"}
        )
        entries.append(Entry(given.name, role, path, given, dict(plain.reported), overridden))
    slugs = [_slug(e.name) for e in entries]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"reproduce: recipe names repeat: {[e.name for e in entries]}")

    dataset, splits, held_out = plan_splits(dataset, splits)
    kind = resolve_kind(dataset)
    cv = dataset.cross_validation
    for k in splits:  # a missing or broken split file fails here, before anything is written
        load_index(dataset.model_copy(update={"split": k}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store_dir = Path(store) if store is not None else out / "features"
    uses_store = any(e.recipe.mode == "features" for e in entries)
    meta: dict[str, Any] = {
        "recipe": entries[0].name,
        "dataset": {
            "kind": kind,
            "root": os.path.abspath(dataset.root),
            "annotations": dataset.annotations and os.path.abspath(dataset.annotations),
        },
        "splits": splits,
        "cross_validation": cross_validation_name(cv) if cv is not None else None,
        "held_out": {str(k): v for k, v in held_out.items()},
        "used": {},
        "overrides": list(overrides),
        "store": str(Path(os.path.abspath(store_dir))) if uses_store else None,
        "metric": "top1",
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

    # Existing runs are checked before anything is extracted or trained.
    for entry, slug in zip(entries, slugs, strict=True):
        for k in splits:
            split_dir = out / slug / f"split{k}"
            if split_state(split_dir) != "new":
                _check_run(split_dir, entry.recipe, dataset.model_copy(update={"split": k}))

    if uses_store:
        totals = _extract_once(entries, dataset, splits, store_dir, progress, flow_root)
        meta["extraction"] = totals
        log.info(
            "features: %d videos, %d extracted, %d already done, %d failed -> %s",
            totals["videos"],
            totals["extracted"],
            totals["existing"],
            totals["failed"],
            store_dir,
        )

    train_kwargs = {"progress": progress, **train_kwargs}
    for entry, slug in zip(entries, slugs, strict=True):
        per_split: dict[str, Metrics] = {}
        training: dict[str, dict[str, Any]] = {}
        for k in splits:
            config = dataset.model_copy(update={"split": k})
            split_dir = out / slug / f"split{k}"
            done, metrics = _run_split(
                entry,
                config,
                split_dir,
                store=store_dir if uses_store else None,
                clips=clips,
                train_kwargs=train_kwargs,
            )
            per_split[str(k)] = metrics
            info = read_run_info(split_dir)
            training[str(k)] = training_summary(info)
            # what was used, not what the split files list (--allow-missing keeps fewer)
            counts = info.counts.model_dump() if info.counts else {}
            meta["used"][str(k)] = {"classes": info.num_classes, **counts}
            entry.per_split[k] = {
                **metrics.headline(),
                "report": (Path(slug) / f"split{k}" / "report" / "report.md").as_posix(),
                "status": done,
            }
            log.info(
                "%s split %d: %s, top-1 %s%%", entry.name, k, done, _pct(metrics.headline()["top1"])
            )
            _write_table(out, [_row(e, kind, splits) for e in entries], meta)  # partial as we go
        write_splits_report(
            out / slug,
            per_split,
            title=f"{entry.name}: mean over splits",
            held_out=meta["held_out"],
            reported=entry.reported,
            dataset=kind,
            training=training,
            clips=clips,
        )
    rows = [_row(e, kind, splits) for e in entries]
    _write_table(out, rows, meta)
    return {**meta, "rows": rows}
