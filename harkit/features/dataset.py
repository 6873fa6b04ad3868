"""Training heads from cached features: `FeatureDataset`, store lookup and `ensure_features`.

Items look exactly like :class:`harkit.data.clips.ClipDataset` items (``video``, ``mask``,
``label``, ``index``), with ``video`` a float32 ``(T, D_total)`` sequence: the sources'
features concatenated along D, so :func:`harkit.data.clips.collate_clips` pads and batches
them. No video is ever decoded here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from harkit.data.clips import SkippedVideo
from harkit.data.datasets import VideoIndex
from harkit.data.jobs import common_video_root, video_id
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.errors import HarkitError
from harkit.features.config import StoreConfig, StoreDtype
from harkit.features.config import store_config as _store_config
from harkit.features.errors import FeatureStoreError
from harkit.features.manifest import source_stamp
from harkit.features.pipeline import dataset_video_root, extract_features
from harkit.features.store import FeatureStore
from harkit.models.recipe import FeatureSource, Recipe
from harkit.precision import Precision

__all__ = ["FeatureDataset", "StoreLocation", "ensure_features", "feature_stores_for"]


@dataclass(frozen=True)
class StoreLocation:
    """Where one source's features live (the store may not exist yet)."""

    source: FeatureSource
    config: StoreConfig
    path: Path

    @property
    def key(self) -> str:
        return self.config.key()

    def exists(self) -> bool:
        return (self.path / FeatureStore.CONFIG).is_file()

    def open(self) -> FeatureStore:
        """The store, created empty if absent."""
        return FeatureStore(self.path, self.config)


def feature_stores_for(
    recipe_or_sources: Recipe | Sequence[FeatureSource],
    sampling: SamplingConfig | None,
    transform: TransformConfig | None,
    store_root: str | Path,
    *,
    dtype: StoreDtype = "float16",
    flow_method: str | None = None,
) -> list[StoreLocation]:
    """Store location of each source, in order. With a recipe, ``sampling``, ``transform``
    and ``flow_method`` left as ``None`` come from ``recipe.input``."""
    if isinstance(recipe_or_sources, Recipe):
        inputs = recipe_or_sources.input
        sources = list(inputs.features)
        sampling = sampling or inputs.sampling
        transform = transform or inputs.transform
        flow_method = flow_method or inputs.flow_method
    else:
        sources = list(recipe_or_sources)
    if not sources:
        raise HarkitError("no feature sources: a features-mode recipe lists input.features")
    sampling = sampling or SamplingConfig()
    flow_method = flow_method or "tvl1"
    out = []
    for source in sources:
        config = _store_config(source, sampling, transform, dtype=dtype, flow_method=flow_method)
        out.append(StoreLocation(source, config, Path(store_root) / config.folder_name()))
    return out


class FeatureDataset(Dataset):
    """Items of ``index`` from feature stores (one per source, concatenated in order).

    A video is looked up by its id (path relative to ``video_root``, default: the deepest
    folder holding every video of ``index``), then by its absolute path. Sources of different
    lengths (flow has one pair less than frames) are cut to the shortest. A video missing or
    failed in any store, whose row was made from another file (size or mtime_ns differ:
    the video changed, or another dataset has the same ids), or whose features hold NaN or
    Inf (one such video made training end with all-NaN weights) gives a :class:`SkippedVideo`;
    :func:`ensure_features` re-extracts such rows first.
    """

    def __init__(
        self,
        index: VideoIndex,
        stores: Sequence[FeatureStore | StoreLocation | str | os.PathLike[str]],
        *,
        video_root: str | Path | None = None,
    ) -> None:
        if not stores:
            raise HarkitError("FeatureDataset needs at least one feature store")
        self.index = index
        self.stores = [self._open(s) for s in stores]
        self.video_root = Path(video_root) if video_root else common_video_root(index)
        self.dim = sum(s.config.feature_dim for s in self.stores)

    @staticmethod
    def _open(store: FeatureStore | StoreLocation | str | os.PathLike[str]) -> FeatureStore:
        if isinstance(store, FeatureStore):
            return store
        path = store.path if isinstance(store, StoreLocation) else Path(store)
        return FeatureStore(path)

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, store: FeatureStore, i: int) -> torch.Tensor:
        item = self.index[i]
        try:
            row = store.row(video_id(item.path, self.video_root))
        except HarkitError:  # outside video_root: only the path lookup can find it
            row = None
        row = row or store.find_path(item.path)
        if row is None:
            raise FeatureStoreError(f"not in feature store {store.path.name}")
        if row.status != "ok":  # extraction's own reason, which names the file
            raise FeatureStoreError(row.error or f"extraction failed ({store.path.name})")
        if not row.matches(source_stamp(item.path)):
            raise FeatureStoreError(
                f"feature store {store.path.name} holds features of another file for this id "
                "(the video changed since extraction, or another dataset has the same paths); "
                "run `harkit extract` again"
            )
        features = torch.from_numpy(store.load_row(row)).float()
        if not bool(torch.isfinite(features).all()):
            bad = int((~torch.isfinite(features)).sum())
            raise FeatureStoreError(
                f"feature store {store.path.name}: {bad} NaN/Inf value(s) in this video's features"
            )
        return features

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedVideo:
        try:
            parts = [self._load(store, i) for store in self.stores]
        except FeatureStoreError as exc:
            return SkippedVideo(i, str(self.index[i].path), str(exc))
        steps = min(p.shape[0] for p in parts)
        if steps == 0:
            return SkippedVideo(i, str(self.index[i].path), "no feature time steps")
        video = torch.cat([p[:steps] for p in parts], dim=1)
        return {
            "video": video,
            "mask": torch.ones(steps, dtype=torch.bool),
            "label": self.index.class_index(self.index[i].label),
            "index": i,
        }


def ensure_features(
    recipe: Recipe,
    index: VideoIndex,
    store_root: str | Path,
    *,
    flow_root: str | Path | None = None,
    video_root: str | Path | None = None,
    dtype: StoreDtype = "float16",
    precision: Precision = "auto",
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[FeatureStore]:
    """Extract whatever ``recipe``'s sources lack for ``index`` (resumable), return the stores
    in source order. ``video_root`` defaults to ``recipe.data``'s root, else the deepest folder
    holding every video; pass the same one to :class:`FeatureDataset`."""
    if recipe.mode != "features":
        raise HarkitError(f"recipe {recipe.name!r} is {recipe.mode}; it reads no feature store")
    if video_root is None and recipe.data is not None:
        video_root = dataset_video_root(recipe.data)
    locations = feature_stores_for(recipe, None, None, store_root, dtype=dtype)
    inputs = recipe.input
    extract_features(
        index,
        inputs.features,
        store_root,
        inputs.sampling,
        inputs.transform,
        dtype=dtype,
        precision=precision,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        flow_root=flow_root,
        flow_method=inputs.flow_method,
        video_root=video_root,
        rank=0,
        world_size=1,
        progress=progress,
    )
    return [location.open() for location in locations]
