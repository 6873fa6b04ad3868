"""NaN / Inf features never reach a head: extraction records them as failed, and a store
that holds them (made before, or damaged) gives a skipped video that names the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harkit.data.clips import SkippedVideo
from harkit.data.datasets import DatasetConfig, load_index
from harkit.features import FeatureDataset, extract_features, feature_stores_for
from harkit.features.extractor import FeatureExtractor
from harkit.features.store import FeatureStore
from harkit.models.recipe import FeatureSource
from tests.helpers.features import FOUR

TINY = FeatureSource(backbone="tiny_image", weights="none")


def test_extraction_records_non_finite_features_as_failed(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    index = load_index(DatasetConfig(root=tiny_root))
    run_groups = FeatureExtractor.run_groups

    def poisoned(self, inputs):
        out = run_groups(self, inputs)
        return {k: torch.full_like(v, float("nan")) for k, v in out.items()}

    monkeypatch.setattr(FeatureExtractor, "run_groups", poisoned)
    report = extract_features(index, [TINY], tmp_path, FOUR, num_workers=0, progress=False)
    assert report.failed == len(index) and report.extracted == 0
    store = FeatureStore(next(tmp_path.glob("tiny_image-*")))
    errors = {row.video_id: row.error for row in store.rows("failed")}
    assert len(errors) == len(index)
    assert all(error == f"{vid}: features contain NaN or inf" for vid, error in errors.items())
    assert "features contain NaN or inf" in Path(report.skip_report).read_text()


def test_features_past_float16_are_refused_not_stored_as_inf(tmp_path: Path) -> None:
    from harkit.features.config import store_config
    from harkit.features.errors import FeatureStoreError

    store = FeatureStore.at(tmp_path, store_config(TINY, FOUR))
    values = torch.zeros(4, 768)
    values[2, 5] = 1e6  # finite in float32, inf in the float16 store
    with pytest.raises(FeatureStoreError, match="past 65504 overflow float16"):
        store.put("v.mp4", values)


def test_non_finite_features_in_a_store_are_skipped_and_named(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    index = load_index(DatasetConfig(root=tiny_root))
    extract_features(index, [TINY], tmp_path, FOUR, num_workers=0, progress=False)
    locations = feature_stores_for([TINY], FOUR, None, tmp_path)
    load_row = FeatureStore.load_row
    first = locations[0].open().find_path(index[0].path)

    def damaged(self, row, **kw):  # a store written before put() checked the cast
        values = load_row(self, row, **kw).astype("float32")
        if row.video_id == first.video_id:
            values[1, 3] = float("inf")
        return values

    monkeypatch.setattr(FeatureStore, "load_row", damaged)
    dataset = FeatureDataset(index, locations)
    skipped = dataset[0]
    assert isinstance(skipped, SkippedVideo)
    assert skipped.reason.endswith("1 NaN/Inf value(s) in this video's features")
    assert not isinstance(dataset[1], SkippedVideo)


def test_a_nan_loss_stops_training_naming_epoch_and_batch() -> None:
    from harkit.models.recipe import load_recipe
    from harkit.train.module import ActionModule, NonFiniteLossError

    module = ActionModule(load_recipe("synthetic-gru"), 2)
    batch = {
        "video": torch.full((2, 4, 768), float("nan")),
        "lengths": torch.tensor([4, 4]),
        "label": torch.tensor([0, 1]),
    }
    with pytest.raises(NonFiniteLossError, match=r"train loss is nan at epoch 1, batch 4: try"):
        module.training_step(batch, 3)
