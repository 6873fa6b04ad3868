"""FeatureExtractor, extract_features and FeatureDataset on tiny synthetic videos."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from harkit.data.clips import SkippedVideo, collate_clips
from harkit.data.datasets import DatasetConfig, VideoIndex, load_index
from harkit.features import (
    FeatureDataset,
    FeatureExtractor,
    FeatureExtractorError,
    ensure_features,
    extract_features,
    feature_stores_for,
)
from harkit.features.preprocess import Preprocessor
from harkit.models.recipe import FeatureSource, Recipe
from tests.helpers.features import FOUR, GOOGLENET, R18, SMALL
from tests.helpers.frames import pattern_frames


def test_fast_path_matches_fp32() -> None:
    frames = pattern_frames(6, 72, 96)
    sources = [R18, GOOGLENET]
    ref = FeatureExtractor(sources, SMALL, precision="fp32", engine="torch", chunk_size=4)(frames)
    fast = FeatureExtractor(sources, SMALL, precision="bf16", chunk_size=4)
    assert fast.precision == "bf16"
    got = fast(frames)
    for key in ref:
        assert got[key].shape == ref[key].shape == (6, fast.dims[key])
        cos = torch.nn.functional.cosine_similarity(got[key], ref[key], dim=1)
        assert cos.min().item() >= 0.999, (key, cos)


def test_shared_backbone_runs_once_and_is_deterministic() -> None:
    sources = [
        FeatureSource(backbone="resnet18", weights="none", layer="layer3"),
        FeatureSource(backbone="resnet18", weights="none"),
    ]
    extractor = FeatureExtractor(sources, SMALL, precision="fp32")
    assert len(extractor.networks) == 1
    calls = []
    extractor.networks[0].register_forward_hook(lambda *a: calls.append(1))
    out = extractor(pattern_frames(3, 64, 64))
    assert len(calls) == 1
    assert [v.shape[1] for v in out.values()] == [256, 512]
    again = FeatureExtractor(sources[1:], SMALL, precision="fp32")(pattern_frames(3, 64, 64))
    torch.testing.assert_close(again[extractor.keys[1]], out[extractor.keys[1]])


def test_bad_input_shapes_are_clear_errors() -> None:
    extractor = FeatureExtractor([R18], SMALL, precision="fp32")
    with pytest.raises(FeatureExtractorError, match=r"\(T, H, W, C\)"):
        extractor(np.zeros((2, 4, 32, 32, 3), np.uint8))
    with pytest.raises(FeatureExtractorError, match="i3d_flow"):
        FeatureExtractor([FeatureSource(backbone="i3d", weights="none", stream="flow")])


def test_segment_backbone_gives_one_feature_per_segment() -> None:
    extractor = FeatureExtractor(
        [FeatureSource(backbone="i3d", weights="none")], SMALL, precision="fp32", chunk_size=8
    )
    clip = pattern_frames(12, 64, 64).reshape(3, 4, 64, 64, 3)  # T=3 segments of L=4
    (features,) = extractor(clip).values()
    assert features.shape == (3, 1024)
    assert torch.isfinite(features).all()


def test_flow_source_reads_flow_planes() -> None:
    extractor = FeatureExtractor(
        [FeatureSource(backbone="i3d_flow", weights="none", stream="flow")],
        SMALL,
        precision="fp32",
    )
    with pytest.raises(FeatureExtractorError, match="flow="):
        extractor(None)
    flow = np.random.default_rng(0).integers(0, 256, (2, 4, 64, 80, 2), dtype=np.uint8)
    (features,) = extractor(None, flow=flow).values()
    assert features.shape == (2, 1024)


def test_two_backbones_into_stores_and_dataset(tiny_root: Path, tmp_path: Path) -> None:
    index = load_index(DatasetConfig(root=tiny_root))
    report = extract_features(
        index, [R18, GOOGLENET], tmp_path, FOUR, SMALL, num_workers=1, progress=False
    )
    assert (report.extracted, report.failed, report.steps) == (len(index), 0, 4 * len(index))
    locations = feature_stores_for([R18, GOOGLENET], FOUR, SMALL, tmp_path)
    assert [str(loc.path) for loc in locations] == list(report.stores.values())
    dataset = FeatureDataset(index, locations)
    item = dataset[0]
    assert set(item) == {"video", "mask", "label", "index"}
    assert item["video"].dtype == torch.float32 and item["video"].shape == (4, 512 + 1024)
    assert item["mask"].all() and item["index"] == 0
    assert item["label"] == index.class_index(index[0].label)
    batch = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate_clips)))
    assert batch["video"].shape == (4, 4, 1536)
    assert batch["lengths"].tolist() == [4] * 4 and batch["skipped"] == []
    # a re-run redoes nothing
    again = extract_features(index, [R18, GOOGLENET], tmp_path, FOUR, SMALL, progress=False)
    assert (again.extracted, again.existing) == (0, len(index))
    # a subset with another common root still finds its videos (by path)
    sub = index.select([it for it in index if it.label == index[0].label])
    assert not isinstance(FeatureDataset(sub, locations)[0], SkippedVideo)


def test_preprocessor_pickles_without_its_networks() -> None:
    """A spawn or forkserver worker receives the preprocessor pickled; it held the backbone
    specs, whose builders are closures: `Can't pickle local object '_torchvision_builder...'`."""
    preprocessor = Preprocessor([R18, GOOGLENET], SMALL)
    copy = pickle.loads(pickle.dumps(preprocessor))
    assert not hasattr(copy, "groups") and copy.needs_rgb and not copy.needs_flow
    frames = pattern_frames(3, 72, 96)
    expected, got = preprocessor(frames), copy(frames)
    assert got.keys() == expected.keys() and len(got) == 2  # 224 px and GoogLeNet's input
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


FLOW_HIST = FeatureSource(backbone="flow_hist", weights="none", stream="flow")


@pytest.mark.parametrize(
    "start_method",
    ["fork", "forkserver", pytest.param("spawn", marks=pytest.mark.slow)],  # spawn: ~5 s
    indirect=True,
)
def test_workers_extract_the_same_features_under_every_start_method(
    start_method: str, tiny_index: VideoIndex, tmp_path: Path
) -> None:
    """Python 3.14 starts DataLoader workers with forkserver on Linux (spawn on macOS):
    extraction with workers failed there (an unpicklable preprocessor and OpenCV flow object,
    and workers that took the fork server for a dead parent and exited)."""
    index = tiny_index.select(list(tiny_index)[:3])
    sources = [R18, FLOW_HIST]  # flow: computed from the sampled pairs in the workers
    exact = {"engine": "torch", "precision": "fp32", "progress": False, "flow_method": "dis"}
    for folder, workers in (("inline", 0), (start_method, 2)):
        report = extract_features(
            index, sources, tmp_path / folder, FOUR, SMALL, num_workers=workers, **exact
        )
        assert (report.extracted, report.failed) == (3, 0)
    expected = feature_stores_for(sources, FOUR, SMALL, tmp_path / "inline", flow_method="dis")
    got = feature_stores_for(sources, FOUR, SMALL, tmp_path / start_method, flow_method="dis")
    a, b = FeatureDataset(index, expected), FeatureDataset(index, got)
    for i in range(len(index)):
        torch.testing.assert_close(b[i]["video"], a[i]["video"], rtol=0, atol=0)


def test_bad_video_is_recorded_and_skipped(tiny_root: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    import shutil

    shutil.copytree(tiny_root, videos)
    broken = sorted(videos.glob("*/*.mp4"))[1]
    broken.write_bytes(b"not a video at all")
    index = load_index(DatasetConfig(root=videos))
    report = extract_features(
        index, [R18], tmp_path / "store", FOUR, SMALL, num_workers=0, progress=False
    )
    assert (report.extracted, report.failed) == (len(index) - 1, 1)
    assert str(broken) in Path(report.skip_report).read_text()
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path / "store")
    store = location.open()
    assert store.counts() == {"ok": len(index) - 1, "failed": 1}
    dataset = FeatureDataset(index, [store])
    position = next(i for i, it in enumerate(index) if it.path == broken)
    skipped = dataset[position]
    assert isinstance(skipped, SkippedVideo)
    # extraction's own reason: the skip warning puts the path in front (it had the id too)
    assert skipped.reason.startswith("not a readable video") and broken.name not in skipped.reason
    batch = collate_clips([dataset[i] for i in range(len(index))])
    assert len(batch["skipped"]) == 1 and batch["video"].shape == (len(index) - 1, 4, 512)


def test_segments_pipeline_and_ensure_features(tiny_root: Path, tmp_path: Path) -> None:
    recipe = Recipe.model_validate(
        {
            "name": "tiny",
            "mode": "features",
            "head": {},
            "input": {
                "sampling": {"strategy": "segments", "segment_length": 5},
                "transform": {"crop_size": 64},
                "features": [{"backbone": "i3d", "weights": "none"}],
            },
        }
    )
    index = load_index(DatasetConfig(root=tiny_root))
    (store,) = ensure_features(recipe, index, tmp_path, num_workers=0, progress=False)
    assert store.counts()["ok"] == len(index)
    dataset = FeatureDataset(index, [store])
    assert dataset[0]["video"].shape == (3, 1024)  # 12 frames in segments of 5: 3 segments
    (location,) = feature_stores_for(recipe, None, None, tmp_path)
    assert (
        location.path == store.path
        and location.config.sampling_id == "segments-segment_length=5-max_segments=None"
    )
