"""The standard protocol: one run per official split, reported as the mean over splits.

``train_and_evaluate`` trains and evaluates ``RUN/split<k>/`` for each split; ``evaluate_splits``
evaluates the split runs such a folder already holds. Both write ``RUN/splits.md`` and
``RUN/splits.json`` (mean ± std of every headline metric, its level and clips per video, and
how each split was trained); over only some of the split runs the folder holds they write
``RUN/splits-1-2.md/.json`` instead (named for its splits), so the mean over all of them is
never replaced by a mean over fewer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, InstanceOf

from harkit._lazy import validated
from harkit.arguments import PathArg, RunFolder
from harkit.data.datasets import OFFICIAL_SPLITS, DatasetConfig, DatasetError, resolve_kind
from harkit.data.splits import cross_validation_folds, cross_validation_name
from harkit.evaluate.metrics import Metrics
from harkit.evaluate.tables import write_splits_report
from harkit.experiments.evaluate import EvalResult, evaluate_run
from harkit.models.recipe import Recipe
from harkit.train.run import RunError, RunPaths, read_recipe, read_run_info

__all__ = ["evaluate_splits", "plan_splits", "split_dirs", "train_and_evaluate"]


def _check_splits(splits: Sequence[int]) -> list[int]:
    if not splits:
        raise DatasetError("no splits given")
    if len(set(splits)) != len(splits) or min(splits) < 1:
        raise DatasetError(f"--splits {','.join(map(str, splits))}: expected distinct numbers >= 1")
    return [int(k) for k in splits]


def split_dirs(run_dir: str | os.PathLike[str], splits: Sequence[int]) -> dict[int, Path]:
    """``{k: RUN/split<k>}``, each checked to be a run folder of split ``k``, before anything
    is evaluated: a missing split fails at once, not after hours of evaluating the others."""
    root = Path(run_dir)
    if not root.is_dir():
        raise RunError(
            f"{root}: folder not found; --splits needs the folder 'harkit train "
            "--splits' wrote (holding split1/, split2/, ...)"
        )
    found = sorted(p.name for p in root.glob("split*") if p.is_dir())
    dirs: dict[int, Path] = {}
    for k in _check_splits(splits):
        split_dir = root / f"split{k}"
        if not (split_dir / "run.json").is_file():
            have = f"it holds {', '.join(found)}" if found else "it holds no split<k>/ run folder"
            raise RunError(
                f"{split_dir}: no run folder for split {k} ({have}); --splits evaluates the "
                "split<k>/ runs 'harkit train --splits' writes into RUN"
            )
        record = read_run_info(split_dir).dataset
        recorded = record.split if record is not None else None
        if recorded != k:
            raise RunError(
                f"{split_dir / 'run.json'}: trained on split {recorded}, not split {k}; "
                "the folder was not written by 'harkit train --splits'"
            )
        dirs[k] = split_dir
    return dirs


def report_name(run_dir: str | os.PathLike[str], splits: Sequence[int]) -> str:
    """``splits`` when ``splits`` are every ``split<k>/`` run ``run_dir`` holds, else
    ``splits-1-2`` (named for the splits averaged): a mean over some splits never replaces
    the mean over all of them."""
    held = {
        int(p.name[5:])
        for p in Path(run_dir).glob("split*")
        if p.is_dir() and p.name[5:].isdigit() and (p / "run.json").is_file()
    }
    if not held or set(splits) == held:
        return "splits"
    return "splits-" + "-".join(str(k) for k in sorted(splits))


def _write_mean(
    out: Path,
    results: Mapping[int, EvalResult],
    recipe: Recipe,
    kind: str | None,
    *,
    clips: int,
    name: str = "splits",
    cross_validation: str | None = None,
    held_out: Mapping[int, list[str]] | None = None,
) -> dict[str, Any]:
    """``<name>.md/.json`` over the splits' video-level (else clip-level) metrics; the
    summary's ``report`` is the Markdown file's path. ``cross_validation`` (its name) and
    ``held_out`` (each fold's test groups) describe folds of data without official splits."""
    per_split: dict[str, Metrics] = {
        str(k): r.video if r.video is not None else r.clip for k, r in results.items()
    }
    training = {str(k): r.training for k, r in results.items() if r.training is not None}
    coverage = {str(k): r.coverage for k, r in results.items() if r.coverage is not None}
    # the paper's numbers are of an official dataset, named by its kind (ucf101, ...)
    files = write_splits_report(
        out,
        per_split,
        title=f"{recipe.name}: {cross_validation} cross-validation, mean over folds"
        if cross_validation
        else f"{recipe.name}: mean over splits",
        reported=recipe.reported,
        dataset=kind,
        training=training,
        clips=clips,
        name=name,
        coverage=coverage,
        held_out={str(k): v for k, v in (held_out or {}).items()},
    )
    summary = json.loads(Path(files["json"]).read_text(encoding="utf-8"))
    if cross_validation:
        summary["cross_validation"] = cross_validation
    return {**summary, "report": str(files["report"])}


def plan_splits(
    dataset: DatasetConfig, splits: Sequence[int] | None = None
) -> tuple[DatasetConfig, list[int], dict[int, list[str]]]:
    """The dataset config, split numbers and (cross-validation) held-out groups of a
    ``--splits`` run, checked before any training.

    Official data: ``splits`` (default: all) within its official splits; UCF50's
    ``leave-one-group-out`` is its official 1-25. Data with ``dataset.cross_validation``:
    every fold, or the given ones. Other data has no splits to average: refused."""
    kind = resolve_kind(dataset)
    cv = dataset.cross_validation
    if kind == "ucf50" and cv == "leave-one-group-out":  # UCF50's own protocol
        dataset, cv = dataset.model_copy(update={"cross_validation": None}), None
        splits = splits or list(range(1, OFFICIAL_SPLITS[kind] + 1))
    if cv is None:
        listed = ",".join(str(k) for k in splits or [])
        if kind not in OFFICIAL_SPLITS:
            # on data without official splits every "split" is the same one: a spread of 0
            raise DatasetError(  # reproduce asks for every split when none are given
                (f"--splits {listed}: " if listed else "")
                + f"{dataset.root} is a '{kind}' dataset without official splits; "
                "cross-validate it by group instead (--splits leave-one-group-out, or "
                "--splits 5-fold)" + (", or train once without --splits" if listed else "")
            )
        top = OFFICIAL_SPLITS[kind]
        chosen = _check_splits(splits) if splits else list(range(1, top + 1))
        if top < max(chosen):
            raise DatasetError(f"--splits {listed}: {kind} has official splits 1-{top} only")
        return dataset, chosen, {}
    folds = cross_validation_folds(dataset)
    chosen = _check_splits(splits) if splits else list(range(1, len(folds) + 1))
    if max(chosen) > len(folds):
        raise DatasetError(
            f"--splits {','.join(map(str, chosen))}: {cross_validation_name(cv)} "
            f"on {dataset.root} has {len(folds)} folds"
        )
    return dataset, chosen, {k: folds[k - 1] for k in chosen}


def train_and_evaluate(
    recipe: Recipe,
    dataset: DatasetConfig,
    run_dir: str | os.PathLike[str],
    *,
    splits: Sequence[int] | None = None,
    store: str | os.PathLike[str] | None = None,
    clips: int = 1,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train and evaluate each split into ``RUN/split{k}/``; write ``RUN/splits.md/.json``
    with the mean over splits (the standard protocol; ``splits-1-2.md`` when RUN holds
    other split runs too, see :func:`report_name`). Returns that summary, with ``report``.

    ``dataset.cross_validation`` cross-validates data without official splits by group:
    every fold when ``splits`` is None (see :func:`plan_splits`)."""
    from harkit.train.trainer import train

    dataset, splits, held_out = plan_splits(dataset, splits)
    kind = resolve_kind(dataset)
    root = Path(run_dir)
    results: dict[int, EvalResult] = {}
    for k in splits:
        config = dataset.model_copy(update={"split": int(k)})
        split_dir = root / f"split{k}"
        train(recipe, config, split_dir, store=store, **train_kwargs)
        results[k] = evaluate_run(split_dir, config, clips=clips, store=store)
    name = report_name(root, splits)  # splits-1-2 when RUN holds other split runs too
    cv = dataset.cross_validation
    return _write_mean(
        root,
        results,
        recipe,
        kind,
        clips=clips,
        name=name,
        held_out=held_out,
        cross_validation=cross_validation_name(cv) if cv else None,
    )


@validated
def evaluate_splits(
    run_dir: RunFolder,
    splits: Sequence[Annotated[int, Field(ge=1)]] | None = None,
    *,
    cross_validation: str | int | None = None,
    dataset: InstanceOf[DatasetConfig] | None = None,
    out_dir: PathArg | None = None,
    recorded_overrides: Mapping[str, Any] | None = None,
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``RUN/split<k>/`` for each of ``splits`` (the folder ``train_and_evaluate``
    or ``harkit train --splits`` wrote) and write the mean over them; returns that summary.

    Each split is tested on its own recorded data and split (``recorded_overrides`` such as
    ``{'allow_leakage': True}`` apply to each), or on ``dataset`` with ``split`` set to ``k``. Reports go
    to ``RUN/split<k>/report/`` and ``RUN/splits.md``, or with ``out_dir`` to
    ``OUT/split<k>/`` and ``OUT/splits.md``; over only some of the split runs RUN holds, the
    mean goes to ``splits-1-2.md`` (see :func:`report_name`), path in the summary's ``report``. ``evaluate_kwargs`` go to :func:`evaluate_run`
    (``clips``, ``store``, ``batch_size``, ``device``, ``precision``). ``splits=None``
    evaluates every ``split<k>/`` RUN holds; ``cross_validation`` (``leave-one-group-out``
    or K) checks they are that protocol's folds. A fold's report names its held-out groups.
    """
    if splits is None:  # every split<k>/ run RUN holds (a cross-validation's folds)
        splits = sorted(
            int(p.name[5:])
            for p in Path(run_dir).glob("split*")
            if p.name[5:].isdigit() and (p / "run.json").is_file()
        )
        if not splits:
            split_dirs(run_dir, [1])  # raises, naming what RUN holds
    dirs = split_dirs(run_dir, splits)
    infos = {k: read_run_info(d) for k, d in dirs.items()}
    schemes = {info.dataset.cross_validation if info.dataset else None for info in infos.values()}
    if len(schemes) > 1:
        raise RunError(
            f"{run_dir}: the split runs mix protocols ({sorted(map(str, schemes))}); "
            "their mean would not measure one"
        )
    scheme = schemes.pop()
    if cross_validation is not None and scheme != cross_validation_name(cross_validation):
        raise RunError(
            f"{run_dir}: the split runs were made with "
            f"{scheme or 'official splits'}, not {cross_validation_name(cross_validation)}"
        )
    overrides = dict(recorded_overrides or {})
    if overrides.get("split") is not None:
        raise DatasetError("--split names one split; with --splits each run is tested on its own")
    recipes = {k: read_recipe(RunPaths(d)) for k, d in dirs.items()}
    names = sorted({r.name for r in recipes.values()})
    if len(names) > 1:
        raise RunError(
            f"{run_dir}: the split runs were trained with different recipes "
            f"({', '.join(names)}); their mean would not measure one model"
        )
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    results: dict[int, EvalResult] = {}
    for k, split_dir in dirs.items():
        config = dataset.model_copy(update={"split": k}) if dataset is not None else None
        results[k] = evaluate_run(
            split_dir,
            config,
            out_dir=out / f"split{k}" if out_dir is not None else None,
            recorded_overrides=overrides,
            **evaluate_kwargs,
        )
    first = infos[next(iter(dirs))].dataset
    kind = (first.kind if first else None) if dataset is None else resolve_kind(dataset)
    held_out = {k: list(info.groups.test) if info.groups else [] for k, info in infos.items()}
    return _write_mean(
        out,
        results,
        recipes[next(iter(dirs))],
        kind,
        clips=int(evaluate_kwargs.get("clips", 1)),
        name=report_name(run_dir, list(dirs)),
        cross_validation=scheme,
        held_out=held_out if scheme else None,
    )
