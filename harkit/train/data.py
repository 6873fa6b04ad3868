"""Training data: the split (with a group-aware validation part), datasets per mode, loaders.

Features mode reads the feature store only (``harkit.features.dataset.FeatureDataset``) and
never decodes video; end-to-end mode decodes clips with the recipe's transforms. Either way
items are the clip dataset's dicts, batched by :func:`harkit.data.collate_clips`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harkit.config import ConfigError, parse_config
from harkit.data.clips import (
    SkippedVideo,
    load_clip,
    out_of_memory_reason,
)
from harkit.data.datasets import (
    OFFICIAL_SPLITS,
    DatasetConfig,
    DatasetError,
    VideoIndex,
    resolve_kind,
)
from harkit.data.inspect import typical_clip
from harkit.data.sampling import SamplingConfig
from harkit.data.splits import (
    build_index,
    carve_share,
    cross_validation_name,
    leakage_status,
)
from harkit.data.transforms import ClipTransform
from harkit.data.video import VideoReadError
from harkit.models.recipe import Recipe
from harkit.train.run_info import (
    DataRecord,
    DatasetRecord,
    SplitCounts,
    SplitGroups,
    VideoFingerprint,
)

log = logging.getLogger(__name__)

__all__ = [
    "FeatureViews",
    "PixelViews",
    "TrainData",
    "carve_validation",
    "check_feature_dim",
    "check_not_empty",
    "feature_datasets",
    "pixel_datasets",
    "plan_validation",
    "prepare_data",
]


@dataclass
class TrainData:
    """Datasets of one run plus what the run folder records about them.

    ``info`` holds the dataset name, split, counts and leakage status (``run.json``; a
    mapping is validated into a :class:`DataRecord`). Any :class:`~torch.utils.data.Dataset`
    yielding clip-dataset dicts works, so tests and callers can pass in-memory data.
    """

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    classes: list[str]
    info: DataRecord = field(default_factory=DataRecord)
    videos: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Per split, the videos' ids, resolved paths and groups (see :func:`split_videos`):
    training records those of train + val (``RUN/trained_videos.json``), and evaluation
    refuses test videos that match any of them."""

    def __post_init__(self) -> None:
        if isinstance(self.info, Mapping):  # in-memory data described by hand
            self.info = parse_config(DataRecord, self.info, source="TrainData.info")


MIN_VALIDATION_GROUPS = 4
"""Fewer training groups than this train without validation: holding out one of GaTech's two
training people per fold left 9 clips to learn from (55.6% leave-one-person-out, 93% without)."""


def carve_validation(index: VideoIndex, val_fraction: float, seed: int = 0) -> VideoIndex:
    """Relabel a group-aware share of the ``train`` items as ``val`` (see
    :func:`plan_validation`, which also says what was chosen)."""
    return plan_validation(index, val_fraction, seed)[0]


def plan_validation(
    index: VideoIndex, val_fraction: float, seed: int = 0
) -> tuple[VideoIndex, str]:
    """Relabel about ``val_fraction`` of the ``train`` items as ``val``, whole groups at a
    time, so validation never shares a source video/actor with training; returns the index
    and one line saying what was chosen (logged, and recorded in ``run.json``).

    With too few groups for ``val_fraction`` one group is held out (a larger share: a smaller
    one cannot be group-aware); with fewer than :data:`MIN_VALIDATION_GROUPS` there is no
    validation (one held out would starve training) and the last epoch is exported. Videos without a
    group count as their own group. ``val_fraction == 0`` returns ``index`` unchanged. When
    no class has enough videos for a stratified share, :func:`carve_share` falls back (one
    per class without groups, else random groups) and the line says so.
    """
    if val_fraction <= 0:
        return index, "validation: none (optim.val_fraction=0)"
    train = index.subset("train")
    if len(train) == 0:
        raise DatasetError(f"{index.name}: the train split is empty")
    groups = sorted({item.group or f"__video{item.path}" for item in train})
    grouped = any(item.group for item in train)
    asked = f"asked {val_fraction:.0%}"
    if len(groups) < 2:
        note = (
            f"validation: none: the {len(train)} training videos are one group, which "
            f"validation cannot share with training ({asked})"
        )
        log.warning("%s: %s", index.name, note)
        return index, note
    if len(groups) < MIN_VALIDATION_GROUPS:
        unit = "groups" if grouped else "videos"
        note = (
            f"validation: none: holding out one of only {len(groups)} training {unit} would "
            f"take {1 / len(groups):.0%} of the training data ({asked}; needs >= "
            f"{MIN_VALIDATION_GROUPS} {unit}); the last epoch is exported"
        )
        log.warning("%s: %s", index.name, note)
        return index, note
    val_keys: set[str] = set()
    how = ""
    if len(groups) >= max(2, round(1 / val_fraction)):
        held_rows, how = carve_share(train, val_fraction, seed)
        val_keys = {str(item.path) for item, h in zip(train, held_rows, strict=True) if h}
    if not val_keys:  # too few groups for the asked share: the smallest group-aware one
        held = groups[int(np.random.default_rng(seed).integers(len(groups)))]
        val_keys = {str(it.path) for it in train if (it.group or f"__video{it.path}") == held}
    out = index.with_splits(
        "val" if item.split == "train" and str(item.path) in val_keys else item.split
        for item in index
    )
    val = out.subset("val")
    held_groups = len({item.group or f"__video{item.path}" for item in val})
    share = f"{held_groups / len(groups):.0%}"
    note = (
        f"validation: {held_groups} of {len(groups)} training groups "
        f"({share}, {len(val)} of {len(train)} videos), {asked}"
        if grouped
        else f"validation: {held_groups} of {len(groups)} training videos ({share}), {asked}"
    ) + (f"; {how}" if how and val_keys else "")
    log.info("%s: %s", index.name, note)
    return out, note


def _leakage_status(index: VideoIndex, allowed: bool) -> str:
    return leakage_status(index, (("train", "test"), ("train", "val"), ("val", "test")), allowed)


def check_not_empty(index: VideoIndex, split: str) -> VideoIndex:
    part = index.subset(split)
    if len(part) == 0:
        raise DatasetError(f"{index.name}: the {split} split is empty (no videos)")
    return part


class PixelViews(Dataset):
    """Evaluation clips of an index, ``views`` per video (TSN-style multi-view testing).

    View 0 is the deterministic evaluation sampling; views 1.. re-sample with the training
    sampler seeded by ``(view, video)`` (``uniform`` becomes ``tsn`` jitter), always with the
    evaluation transform. Item ``index`` is the video's position, so views aggregate.
    """

    def __init__(
        self, index: VideoIndex, sampling: SamplingConfig, transform: ClipTransform, views: int
    ) -> None:
        self.index, self.sampling, self.transform, self.views = index, sampling, transform, views
        jitter = "tsn" if sampling.strategy == "uniform" else sampling.strategy
        self.jittered = sampling.model_copy(update={"strategy": jitter})

    def __len__(self) -> int:
        return len(self.index) * self.views

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedVideo:
        video, view = divmod(i, self.views)
        item = self.index[video]
        rng = np.random.default_rng([view, video])
        try:
            frames, sampled = load_clip(
                item.path,
                self.sampling if view == 0 else self.jittered,
                train=view > 0,
                rng=rng,
            )
            flat = self.transform(frames.reshape(-1, *frames.shape[-3:]))
        except VideoReadError as exc:
            return SkippedVideo(video, str(item.path), exc.reason)
        except MemoryError as exc:  # one huge clip is skipped, not the evaluation
            return SkippedVideo(video, str(item.path), out_of_memory_reason(exc))
        return {
            "video": flat.reshape(*sampled.indices.shape, *flat.shape[1:]),
            "mask": torch.from_numpy(sampled.mask),
            "label": self.index.class_index(item.label),
            "index": video,
        }


class FeatureViews(Dataset):
    """``views`` temporal windows per item of a features dataset (multi-view testing).

    Features are cached with one sampling per video, so the views are windows over the
    stored sequence: each covers half of the valid steps (at least one), their starts evenly
    spread from the first to the last possible position. ``views == 1`` is the whole sequence.
    """

    def __init__(self, base: Dataset, views: int) -> None:
        self.base, self.views = base, views

    def __len__(self) -> int:
        return len(self.base) * self.views  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedVideo:
        video, view = divmod(i, self.views)
        item = self.base[video]
        if isinstance(item, SkippedVideo) or self.views == 1:
            return item
        valid = int(item["mask"].sum()) or 1
        width = max(1, math.ceil(valid / 2))
        start = round(view * (valid - width) / max(1, self.views - 1))
        return {
            **item,
            "video": item["video"][start : start + width],
            "mask": item["mask"][start : start + width],
        }


def pixel_datasets(recipe: Recipe, index: VideoIndex, *, views: int = 1) -> dict[str, Dataset]:
    """End-to-end datasets for the ``train``/``val``/``test`` items of ``index``."""
    from harkit.data.clips import ClipDataset
    from harkit.models.builder import pixel_input

    prep = pixel_input(recipe)  # the encoder weights entry's for a pretrained encoder
    sampling = recipe.input.sampling
    eval_tf = ClipTransform.from_preprocessing(recipe.input.transform, prep, train=False)
    train_tf = ClipTransform.from_preprocessing(
        recipe.input.train_transform or recipe.input.transform, prep, train=True
    )
    out: dict[str, Dataset] = {}
    for split in ("train", "val", "test"):
        part = index.subset(split)
        if not len(part):
            continue
        if split == "train":
            out[split] = ClipDataset(part, sampling, train_tf, train=True)
        elif split == "test" and views > 1:
            out[split] = PixelViews(part, sampling, eval_tf, views)
        else:
            out[split] = ClipDataset(part, sampling, eval_tf, train=False)
    return out


def feature_datasets(
    recipe: Recipe,
    index: VideoIndex,
    store: str | os.PathLike[str],
    *,
    views: int = 1,
    extract: bool = True,
    device: str | None = None,
    video_root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> dict[str, Dataset]:
    """Features-mode datasets of ``splits`` over the feature store (extracting what their
    videos lack first; the other splits' videos are not looked at).

    The store key does not depend on the head, so every head trained on one recipe's inputs
    shares the same cached features. Videos are never decoded here.
    """
    from harkit.features import dataset as fds

    if extract:
        wanted = index.select(item for item in index if item.split in splits)
        stores = fds.ensure_features(
            recipe, wanted, Path(store), video_root=video_root, device=device, progress=progress
        )
    else:
        stores = [loc.open() for loc in fds.feature_stores_for(recipe, None, None, Path(store))]
    out: dict[str, Dataset] = {}
    for split in splits:
        part = index.subset(split)
        if not len(part):
            continue
        ds = fds.FeatureDataset(part, stores, video_root=video_root)
        out[split] = FeatureViews(ds, views) if split == "test" and views > 1 else ds
    return out


def check_feature_dim(recipe: Recipe, dataset: Dataset) -> None:
    """Raise :class:`ConfigError` when the dataset's feature size differs from the recipe's."""
    if recipe.mode != "features" or len(dataset) == 0:  # type: ignore[arg-type]
        return
    from harkit.models.builder import feature_dims

    dims = feature_dims(recipe)
    got = getattr(dataset, "dim", None)
    if got is None:
        for i in range(min(len(dataset), 8)):  # type: ignore[arg-type]
            item = dataset[i]
            if not isinstance(item, SkippedVideo):
                got = int(item["video"].shape[-1])
                break
    if got is not None and got != sum(dims):
        sources = ", ".join(
            f"{s.backbone}{'/' + s.layer if s.layer else ''}={d}"
            for s, d in zip(recipe.input.features, dims, strict=True)
        )
        raise ConfigError(
            f"feature size mismatch: the data has {got}-d features but recipe "
            f"'{recipe.name}' expects {sum(dims)}-d ({sources}); was the store built for "
            "another recipe?"
        )


def _is_first_process() -> bool:
    return all(
        int(os.environ.get(k, "0") or 0) == 0 for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID")
    )


def prepare_data(
    recipe: Recipe,
    dataset: DatasetConfig,
    *,
    store: str | os.PathLike[str] | None = None,
    views: int = 1,
    device: str | None = None,
    progress: bool = True,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> TrainData:
    """Index ``dataset`` (leakage guard on), carve validation, and build the datasets of
    ``splits`` (evaluation: ``("test",)``; the store and the files of the other splits'
    videos are then not looked at)."""
    index = build_index(dataset)
    index, validation = plan_validation(index, recipe.optim.val_fraction, recipe.optim.seed)
    check_not_empty(index, "train")
    untrained = sorted(set(index.classes) - {item.label for item in index.subset("train")})
    if untrained:  # the model can never predict them: say so before it trains
        log.warning(
            "%s: %d class(es) without a training video, the model cannot learn them: %s",
            index.name,
            len(untrained),
            ", ".join(untrained),
        )
    if recipe.mode == "features":
        if store is None:
            raise ConfigError("features mode needs a feature store folder (--store)")
        # Only the first process extracts: DDP children launched by Lightning start after it
        # finished. Under torchrun, extract first (harkit features) so no rank waits on another.
        from harkit.features.pipeline import dataset_video_root

        sets = feature_datasets(
            recipe,
            index,
            store,
            views=views,
            device=device,
            extract=_is_first_process(),
            video_root=dataset_video_root(dataset),
            progress=progress,
            splits=splits,
        )
    else:
        sets = pixel_datasets(recipe, index, views=views)
        sets = {split: data for split, data in sets.items() if split in splits}
    counts = {s: len(index.subset(s)) for s in ("train", "val", "test")}
    kind = resolve_kind(dataset)
    # absolute locations: a run evaluated from another folder must find the same data
    dataset = dataset.model_copy(
        update={
            "root": Path(os.path.abspath(dataset.root)),
            "annotations": dataset.annotations and Path(os.path.abspath(dataset.annotations)),
        }
    )
    item_ids = _item_ids(index, dataset)  # one pass over the index for every id below
    all_ids = sorted(item_ids)
    # only official splits and cross-validation folds have a split number to record
    numbered = kind in OFFICIAL_SPLITS or dataset.cross_validation is not None
    videos = {
        split: split_videos(index, dataset, (split,), ids=item_ids, resolve=split in splits)
        for split in ("train", "val", "test")
    }
    cross_validation = dataset.cross_validation
    info = DataRecord(
        dataset=DatasetRecord(
            name=index.name,
            kind=kind,
            root=str(dataset.root),
            split=dataset.split if numbered else None,
            cross_validation=cross_validation and cross_validation_name(cross_validation),
            group_column=index.group_column,
            allow_leakage=dataset.allow_leakage,
        ),
        dataset_config=dataset,
        counts=SplitCounts(**counts),
        # which people/source videos each side holds: a fold's report names what it tested
        groups=SplitGroups(**{split: part["groups"] for split, part in videos.items()}),
        # the typical training clip, so streams can space their frames as training did;
        # features mode never opens a video (streams then probe the recorded data)
        train_clips=typical_clip(index.subset("train")) if recipe.mode != "features" else None,
        validation=validation,
        leakage=_leakage_status(index, dataset.allow_leakage),
        store=os.path.abspath(store) if store is not None else None,
        videos=VideoFingerprint(count=len(all_ids), fingerprint=fingerprint(all_ids)),
    )
    return TrainData(
        sets.get("train"),  # type: ignore[arg-type]  # None when not among ``splits``
        sets.get("val"),
        sets.get("test"),
        list(index.classes),
        info,
        {split: part for split, part in videos.items() if split in splits},
    )


def split_videos(
    index: VideoIndex,
    dataset: DatasetConfig,
    splits: tuple[str, ...],
    *,
    ids: list[str] | None = None,
    resolve: bool = True,
) -> dict[str, list[str]]:
    """``ids`` (see :func:`video_ids`), ``paths`` (resolved: symlinks and ``..`` cannot hide a
    video; empty without ``resolve``) and ``groups`` of the items of ``splits``. ``ids``:
    every item's id, in index order, when the caller has them."""
    ids = ids if ids is not None else _item_ids(index, dataset)
    chosen = [(item, vid) for item, vid in zip(index, ids, strict=True) if item.split in splits]
    return {
        "ids": sorted(vid for _, vid in chosen),
        "paths": sorted(_resolved([item.path for item, _ in chosen])) if resolve else [],
        "groups": sorted({item.group for item, _ in chosen if item.group}),
    }


def _resolved(paths: list[Path]) -> list[str]:
    """``os.path.realpath`` of each path, resolving each folder once: a file that is not a
    link is its resolved folder plus its name (one ``lstat``, not one per path component)."""
    folders: dict[str, str] = {}
    out = []
    for path in paths:
        head, name = os.path.split(os.path.abspath(path))
        if head not in folders:
            folders[head] = os.path.realpath(head)
        candidate = os.path.join(folders[head], name)
        try:
            link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:  # absent: realpath keeps the name as it is
            link = False
        out.append(os.path.realpath(candidate) if link else candidate)
    return out


def _item_ids(index: VideoIndex, dataset: DatasetConfig) -> list[str]:
    """Every item's id (see :func:`video_ids`), in index order."""
    from harkit.features.pipeline import dataset_video_root, video_ids_under

    return video_ids_under([item.path for item in index], dataset_video_root(dataset))


def video_ids(
    index: VideoIndex, dataset: DatasetConfig, splits: tuple[str, ...] | None = None
) -> list[str]:
    """Sorted ids (paths relative to the dataset's video root) of the items of ``splits``
    (None: all): the same for the same data wherever it is mounted."""
    ids = _item_ids(index, dataset)
    return sorted(
        vid for item, vid in zip(index, ids, strict=True) if splits is None or item.split in splits
    )


def fingerprint(ids: list[str]) -> str:
    """A short hash of a dataset's sorted video ids: which videos, not their bytes."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
