"""Group-aware splits, the leakage guard, and the train/test index built with both.

Imports :mod:`harkit.data.datasets`, never the reverse: an index is loaded there (with the
splits the data defines itself), split and guarded here.

Clips of one group (a UCF101/UCF50 ``gXX`` source video, an actor) look alike; a split with
one group on both sides inflates accuracy. Splits made here never do that, and
:func:`assert_no_leakage` refuses a split that does unless the user overrides it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from harkit.data.datasets import (
    OFFICIAL_SPLITS,
    DatasetConfig,
    DatasetError,
    VideoIndex,
    load_index,
    resolve_kind,
)

__all__ = [
    "NO_GROUPS",
    "LeakageError",
    "assert_no_leakage",
    "build_index",
    "carve_share",
    "cross_validation_folds",
    "cross_validation_name",
    "group_split",
    "leakage_status",
    "leaked_groups",
]

#: What every report says when no video has a group: nothing could be checked.
NO_GROUPS = "no groups: leakage not checked"

log = logging.getLogger(__name__)


class LeakageError(DatasetError):
    """A split puts clips of one group in both train and test."""


def leaked_groups(index: VideoIndex, train: str = "train", test: str = "test") -> list[str]:
    """Groups that have clips in both ``train`` and ``test``."""
    sides: dict[str, set[str]] = {}
    for item in index:
        if item.group is not None and item.split in (train, test):
            sides.setdefault(item.group, set()).add(item.split)
    return sorted(group for group, seen in sides.items() if len(seen) == 2)


def leakage_status(
    index: VideoIndex,
    pairs: tuple[tuple[str, str], ...] = (("train", "test"),),
    allowed: bool = False,
) -> str:
    """One line for reports and ``run.json``: :data:`NO_GROUPS` when no video of the splits in
    ``pairs`` has a group, ``checked, ...`` or ``LEAKS (...)`` otherwise."""
    sides = {s for pair in pairs for s in pair}
    items = [item for item in index if item.split in sides]
    order = ("train", "val", "test")
    present = {str(item.split) for item in items}  # an empty val is not named as checked
    names = "/".join(sorted(present, key=lambda s: (order.index(s) if s in order else 3, s)))
    ungrouped = sum(1 for item in items if item.group is None)
    if not items or ungrouped == len(items):
        return NO_GROUPS
    bad = {f"{a}/{b}": n for a, b in pairs if (n := len(leaked_groups(index, a, b)))}
    if bad:
        detail = "; ".join(f"{k}: {n} groups" for k, n in bad.items())
        return f"LEAKS ({detail}){' - allowed by allow_leakage' if allowed else ''}"
    status = f"checked, no group on two sides ({names})"
    if ungrouped:
        status += f"; {ungrouped} videos without a group not checked"
    return status


def assert_no_leakage(index: VideoIndex, allow: bool = False) -> None:
    """Raise :class:`LeakageError` listing the groups on both sides (warn when ``allow``)."""
    if all(item.group is None for item in index):
        log.warning(
            "%s: %s (no group column, no gXX/aXX clip names; see --group-column)",
            index.name,
            NO_GROUPS,
        )
        return
    leaked = leaked_groups(index)
    if not leaked:
        return
    shown = ", ".join(leaked[:20]) + (f" (+{len(leaked) - 20} more)" if len(leaked) > 20 else "")
    message = f"{index.name}: {len(leaked)} group(s) appear in both train and test: {shown}"
    if allow:
        log.warning("%s (allowed by allow_leakage)", message)
        return
    raise LeakageError(
        f"{message}. Use a group-aware split ('harkit data split') or set allow_leakage: true"
    )


def group_split(index: VideoIndex, test_fraction: float = 0.2, seed: int = 0) -> VideoIndex:
    """Assign ``train``/``test`` with whole groups on one side, class proportions kept.

    Items without a group count as their own group. Uses scikit-learn's
    ``StratifiedGroupKFold`` with ``round(1 / test_fraction)`` folds and takes one as test
    (over 50%: one of ``round(1 / (1 - test_fraction))`` as train); with too few videos per
    class for that, the fallback of :func:`carve_share` (warned).
    """
    if len(index) < 2:
        raise DatasetError(f"{index.name}: need at least 2 videos to split, found {len(index)}")
    # One fold of k is at most half: a test share over 50% is the train share carved instead.
    flip = test_fraction > 0.5
    share = 1 - test_fraction if flip else test_fraction
    folds = max(2, round(1 / share))
    groups = [item.group or f"__video{i}" for i, item in enumerate(index)]
    if len(set(groups)) < folds:
        raise DatasetError(
            f"{index.name}: {len(set(groups))} groups cannot make a {test_fraction:.0%} "
            f"group-aware test split (needs >= {folds} groups)"
        )
    carved, how = carve_share(index, share, seed)
    is_test = ~carved if flip else carved
    if how:
        log.warning("%s: %s split: %s", index.name, "train" if flip else "test", how)
    elif abs(is_test.mean() - test_fraction) > 0.05:  # e.g. 0.4: 1 of round(2.5) = 2 folds
        log.warning(
            "%s: the test split holds %.0f%% of the videos, not the %.0f%% asked: it is %s of "
            "%d stratified folds of whole groups",
            index.name,
            100 * is_test.mean(),
            100 * test_fraction,
            "all but one" if flip else "one",
            folds,
        )
    return index.with_splits("test" if t else "train" for t in is_test)


def carve_share(index: VideoIndex, fraction: float, seed: int = 0) -> tuple[np.ndarray, str]:
    """Rows (True) of about ``fraction`` of ``index``, whole groups at a time, and how they were
    chosen: ``""`` for the stratified k-fold share, else one phrase for the fallback.

    ``StratifiedGroupKFold`` with ``round(1 / fraction)`` folds fails when no class has that
    many videos; then videos without groups are held out per class (at least 1 of each, at
    least 1 left) when every class has 2, else whole groups at random (at least one kept).
    Items without a group count as their own group; needs at least 2 groups.
    """
    n = len(index)
    folds = max(2, round(1 / fraction))
    groups = [item.group or f"__video{i}" for i, item in enumerate(index)]
    targets = np.asarray(index.targets)
    counts = Counter(targets.tolist())
    held = np.zeros(n, dtype=bool)
    if len(set(groups)) >= folds and max(counts.values()) >= folds:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, rows = next(splitter.split(np.zeros(n), targets, groups))
        held[rows] = True
        return held, ""
    rng = np.random.default_rng(seed)
    reason = f"no class has the {folds} videos a stratified {fraction:.0%} share needs"
    if all(item.group is None for item in index) and min(counts.values()) >= 2:
        for target, count in sorted(counts.items()):
            rows = np.flatnonzero(targets == target)
            take = min(count - 1, max(1, round(count * fraction)))
            held[rng.choice(rows, size=take, replace=False)] = True
        return held, f"{reason}, so {'at least ' if held.sum() > len(counts) else ''}1 per class"
    want = max(1, round(n * fraction))
    keys = np.asarray(groups)
    for group in rng.permutation(sorted(set(groups)))[:-1]:  # one group at least stays
        if held.sum() >= want:
            break
        held |= keys == group
    return held, f"{reason}, so a random share, not stratified"


def _natural(text: str) -> list[int | str]:
    """Sort key with numbers in order: person 2 before person 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def cross_validation_name(cross_validation: str | int) -> str:
    """``leave-one-group-out`` or ``5-fold``: what ``--splits`` takes and reports print."""
    return (
        str(cross_validation) if isinstance(cross_validation, str) else f"{cross_validation}-fold"
    )


def _fold_groups(index: VideoIndex, cross_validation: str | int, seed: int) -> list[list[str]]:
    """The groups each fold holds out, fold 1 first (videos without a group are their own
    group, keyed ``__video<i>``, in k-fold only)."""
    name = cross_validation_name(cross_validation)
    if cross_validation == "leave-one-group-out":
        ungrouped = [str(item.path) for item in index if item.group is None]
        if ungrouped:
            raise DatasetError(
                f"{index.name}: {name} needs a group for every video; {len(ungrouped)} have "
                f"none (e.g. {ungrouped[0]}). Add a group/actor/person/subject/performer "
                "column (or --group-column NAME), or use k folds (--splits 5-fold)"
            )
        groups = sorted({str(item.group) for item in index}, key=_natural)
        if len(groups) < 2:
            raise DatasetError(f"{index.name}: {name} needs >= 2 groups, found {len(groups)}")
        return [[group] for group in groups]
    k = int(cross_validation)
    keys = [item.group or f"__video{i}" for i, item in enumerate(index)]
    if len(set(keys)) < k:
        raise DatasetError(
            f"{index.name}: {len(set(keys))} groups cannot make {name} "
            f"cross-validation (needs >= {k} groups)"
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = [
        sorted({keys[r] for r in rows}, key=_natural)
        for _, rows in splitter.split(np.zeros(len(index)), index.targets, keys)
    ]
    if not all(folds):
        raise DatasetError(f"{index.name}: {name} left a fold without videos; use fewer folds")
    return folds


def cross_validation_folds(config: DatasetConfig) -> list[list[str]]:
    """The groups each fold of ``config.cross_validation`` holds out, fold 1 first: split
    ``k`` tests on ``folds[k - 1]``. Videos without a group (k-fold only) are not named."""
    if config.cross_validation is None:
        raise DatasetError(f"{config.root}: no cross_validation set")
    kind = resolve_kind(config)
    if kind in OFFICIAL_SPLITS:
        raise DatasetError(
            f"{config.root}: {kind} has official splits (1-{OFFICIAL_SPLITS[kind]}); "
            f"{cross_validation_name(config.cross_validation)} cross-validation is for data "
            "without them"
        )
    folds = _fold_groups(load_index(config), config.cross_validation, config.seed)
    return [[g for g in fold if not g.startswith("__video")] for fold in folds]


def _cross_validation_split(index: VideoIndex, config: DatasetConfig) -> VideoIndex:
    assert config.cross_validation is not None
    folds = _fold_groups(index, config.cross_validation, config.seed)
    name = cross_validation_name(config.cross_validation)
    if config.split > len(folds):
        raise DatasetError(
            f"{index.name}: split {config.split}: {name} has {len(folds)} folds (1-{len(folds)})"
        )
    held = set(folds[config.split - 1])
    if any(item.split is not None for item in index):
        log.info("%s: %s replaces the manifest's split column", index.name, name)
    keys = [item.group or f"__video{i}" for i, item in enumerate(index)]
    return index.with_splits("test" if key in held else "train" for key in keys)


def build_index(config: DatasetConfig) -> VideoIndex:
    """The index of ``config``, with every item assigned to ``train`` or ``test``.

    Official splits are used where they exist; UCF50 holds out group ``split``; with
    ``cross_validation`` split ``k`` holds out fold ``k``; other data without a split column
    is split group-aware (stratified by class) with ``test_fraction``. The leakage guard
    runs last.
    """
    if config.cross_validation is not None and resolve_kind(config) in OFFICIAL_SPLITS:
        cross_validation_folds(config)  # raises: official splits are the benchmark's
    index = load_index(config)
    if config.cross_validation is not None:
        index = _cross_validation_split(index, config)
    elif any(item.split is None for item in index):
        index = group_split(index, config.test_fraction, config.seed)
    assert_no_leakage(index, allow=config.allow_leakage)
    return index
