import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from harkit.data.clips import ClipDataset, SkippedVideo, SkipReport, collate_clips, load_clip
from harkit.data.datasets import VideoIndex, VideoItem
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.data.video import PyAVReader, VideoInfo


@pytest.fixture
def index(make_video, tmp_path):
    good = [make_video(f"v{i}.mp4", num_frames=30 + 5 * i, seed=i) for i in range(3)]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"")
    items = [VideoItem(p, "a" if i % 2 else "b", f"g{i}") for i, p in enumerate([*good, bad])]
    return VideoIndex("toy", items, ["a", "b"])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_skips_and_reports_bad_videos(index, tmp_path, workers):
    dataset = ClipDataset(index, SamplingConfig(num_frames=8), ClipTransform(TransformConfig(), 32))
    loader = DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate_clips)
    report = SkipReport(tmp_path / "skipped.json")
    batches = list(loader)
    for batch in batches:
        report.record_batch(batch)
    batch = batches[0]
    assert batch["video"].shape == (3, 8, 3, 32, 32)
    assert batch["label"].tolist() == [1, 0, 1] and batch["lengths"].tolist() == [8, 8, 8]
    saved = json.loads((tmp_path / "skipped.json").read_text())
    assert list(saved) == [str(tmp_path / "broken.mp4")] and "empty" in next(iter(saved.values()))


def test_segments_give_t_by_l_clips(index):
    sampling = SamplingConfig(strategy="segments", segment_length=16)
    dataset = ClipDataset(index, sampling, ClipTransform(TransformConfig(), 32))
    item = dataset[1]  # 35 frames
    assert item["video"].shape == (3, 16, 3, 32, 32)
    assert item["mask"].sum().item() == 35
    batch = collate_clips([item, dataset[0]])  # 30 frames -> T=2
    assert batch["lengths"].tolist() == [3, 2]


def test_bad_item_is_a_skip_marker_not_an_exception(index):
    assert isinstance(ClipDataset(index, SamplingConfig())[3], SkippedVideo)
    assert collate_clips([ClipDataset(index, SamplingConfig())[3]])["skipped"]


def test_header_that_overcounts_is_resampled(make_video, monkeypatch):
    path = make_video("v.mp4", num_frames=20)
    real_info = PyAVReader.info

    def lying_info(self, p):
        info = real_info(self, p)
        return VideoInfo(info.path, info.num_frames + 15, info.fps, info.width, info.height, "h264")

    monkeypatch.setattr(PyAVReader, "info", lying_info)
    frames, sampled = load_clip(path, SamplingConfig(num_frames=5), backend="pyav")
    assert sampled.indices.tolist() == [0, 5, 10, 14, 19]
    assert frames.shape == (5, 48, 64, 3)


def test_training_sampling_is_seeded(index):
    dataset = ClipDataset(index, SamplingConfig(strategy="tsn", num_frames=4), train=True)
    torch.manual_seed(0)
    a = dataset[0]["video"]
    torch.manual_seed(0)
    b = dataset[0]["video"]
    assert torch.equal(a, b) and a.dtype == torch.uint8
    assert np.asarray(a).shape == (4, 3, 48, 64)
