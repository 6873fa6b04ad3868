"""FeatureStore: keys, config mismatch, atomic writes, manifest invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.features import FeatureStore, FeatureStoreError, store_config
from harkit.models.recipe import FeatureSource

BASE = FeatureSource(backbone="resnet18", weights="none")


def _config(**changes):
    source = changes.pop("source", BASE)
    sampling = changes.pop("sampling", SamplingConfig(num_frames=8))
    transform = changes.pop("transform", TransformConfig())
    return store_config(source, sampling, transform, **changes)


def test_key_changes_with_every_field(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1)}, weights)
    other_weights = tmp_path / "w2.pt"
    torch.save({"x": torch.ones(1)}, other_weights)
    variants = {
        "base": _config(),
        "backbone": _config(source=FeatureSource(backbone="resnet50", weights="none")),
        "weights": _config(source=FeatureSource(backbone="resnet18", weights="imagenet")),
        "weights file": _config(source=FeatureSource(backbone="resnet18", weights=str(weights))),
        "other file": _config(
            source=FeatureSource(backbone="resnet18", weights=str(other_weights))
        ),
        "layer": _config(source=FeatureSource(backbone="resnet18", weights="none", layer="layer3")),
        "crop": _config(transform=TransformConfig(crop_size=112)),
        "resize": _config(transform=TransformConfig(resize=256)),
        "sampling n": _config(sampling=SamplingConfig(num_frames=9)),
        "sampling kind": _config(sampling=SamplingConfig(strategy="tsn", num_frames=8)),
        "dtype": _config(dtype="float32"),
    }
    keys = {name: c.key() for name, c in variants.items()}
    assert len(set(keys.values())) == len(keys), keys
    # a moved/renamed weights file keeps its key (content hash)
    moved = tmp_path / "renamed.pt"
    weights.rename(moved)
    assert (
        _config(source=FeatureSource(backbone="resnet18", weights=str(moved))).key()
        == keys["weights file"]
    )
    # input size and mean/std come from each backbone's spec
    irv2 = store_config(
        FeatureSource(backbone="inception_resnet_v2", weights="none"), SamplingConfig()
    )
    goog = store_config(FeatureSource(backbone="googlenet", weights="none"), SamplingConfig())
    assert (irv2.input_size, goog.input_size) == (299, 224)
    assert goog.mean == (0.5, 0.5, 0.5)
    assert _config().format_version >= 1


def test_mismatched_config_names_the_fields(tmp_path: Path) -> None:
    FeatureStore(tmp_path / "s", _config())
    with pytest.raises(FeatureStoreError) as info:
        FeatureStore(
            tmp_path / "s", _config(sampling=SamplingConfig(num_frames=9), dtype="float32")
        )
    text = str(info.value)
    assert "sampling.num_frames (8 != 9)" in text
    assert "dtype ('float16' != 'float32')" in text
    assert "backbone" not in text
    reopened = FeatureStore(tmp_path / "s")  # no config: opens as it is
    assert reopened.config == _config()
    with pytest.raises(FeatureStoreError, match="not a feature store"):
        FeatureStore(tmp_path / "missing")


def test_put_get_rows_and_dtypes(tmp_path: Path) -> None:
    store = FeatureStore.at(tmp_path, _config())
    assert store.path.name.startswith("resnet18-pooled-")
    data = np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32)
    store.put("cls/a.mp4", data, path="/videos/cls/a.mp4")
    got = store.get("cls/a.mp4")
    assert got.dtype == np.float16 and got.shape == (5, 512)
    np.testing.assert_allclose(got, data, atol=2e-3, rtol=1e-3)
    store.put_failed("cls/b.mp4", "broken header")
    assert store.counts() == {"ok": 1, "failed": 1}
    assert "cls/a.mp4" in store and "cls/b.mp4" not in store
    assert store.done_ids() == {"cls/a.mp4", "cls/b.mp4"}
    assert store.done_ids(include_failed=False) == {"cls/a.mp4"}
    with pytest.raises(FeatureStoreError, match="broken header"):
        store.get("cls/b.mp4")
    assert store.find_path("/videos/cls/a.mp4").video_id == "cls/a.mp4"
    # overwrite: one row, new content
    store.put("cls/a.mp4", data[:3] * 2)
    assert len(store) == 2 and store.get("cls/a.mp4").shape == (3, 512)
    with pytest.raises(FeatureStoreError, match=r"\(T, 512\)"):
        store.put("x.mp4", np.zeros((2, 7)))
    with pytest.raises(FeatureStoreError, match="relative path"):
        store.put("../escape.mp4", data)
    wide = FeatureStore.at(tmp_path, _config(dtype="float32"))
    wide.put("a.mp4", data)
    assert wide.get("a.mp4").dtype == np.float32
    np.testing.assert_array_equal(wide.get("a.mp4"), data)
    assert store.verify() == [] and wide.verify() == []


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore.at(tmp_path, _config())
    old = np.ones((2, 512), np.float32)
    store.put("v.mp4", old)

    def broken_save(file, arr, *args, **kwargs):
        Path(file).write_bytes(b"\x93NUMPY half")  # a partial write, then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        store.put("v.mp4", np.zeros((4, 512), np.float32))
    with pytest.raises(OSError, match="disk full"):
        store.put("new.mp4", np.zeros((4, 512), np.float32))
    monkeypatch.undo()
    # the old file and row survive intact, the new video has neither file nor row, no temp left
    np.testing.assert_array_equal(store.get("v.mp4"), old)
    assert store.row("new.mp4") is None and not store.file_for("new.mp4").exists()
    assert sorted(p.name for p in (store.path / "features").iterdir()) == ["v.mp4.npy"]
    assert store.verify() == []


def test_verify_reports_a_broken_file(tmp_path: Path) -> None:
    store = FeatureStore.at(tmp_path, _config())
    store.put("v.mp4", np.ones((2, 512), np.float32))
    store.file_for("v.mp4").write_bytes(b"garbage")
    problems = store.verify()
    assert len(problems) == 1 and "v.mp4" in problems[0]
