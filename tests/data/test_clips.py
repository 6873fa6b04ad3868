import json
import sys

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


def test_a_batch_with_skipped_videos_moves_to_a_device(index):
    """Lightning moves every batch with ``apply_to_collection``, which refused the skip
    markers when they were frozen dataclasses: training died on the first bad video."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    dataset = ClipDataset(index, SamplingConfig(num_frames=4), ClipTransform(TransformConfig(), 32))
    batch = move_data_to_device(collate_clips([dataset[0], dataset[3]]), torch.device("cpu"))
    assert batch["skipped"] == [SkippedVideo(3, str(index[3].path), "file is empty (0 bytes)")]
    assert batch["video"].shape == (1, 4, 3, 32, 32)


def test_running_out_of_memory_on_one_video_is_a_skip(index, monkeypatch):
    dataset = ClipDataset(index, SamplingConfig(num_frames=4), ClipTransform(TransformConfig(), 32))

    def no_memory(self, path, indices):
        raise MemoryError("Unable to allocate 12.0 GiB for an array")

    monkeypatch.setattr(PyAVReader, "read_frames", no_memory)
    item = dataset[0]
    assert isinstance(item, SkippedVideo)
    assert item.reason == "ran out of memory reading it (Unable to allocate 12.0 GiB for an array)"


def test_running_out_of_memory_in_the_transform_is_a_skip(index):
    def huge(frames):
        raise MemoryError()

    item = ClipDataset(index, SamplingConfig(num_frames=4), huge)[1]
    assert isinstance(item, SkippedVideo) and item.reason == "ran out of memory reading it"


def test_a_video_without_decodable_frames_is_a_read_error(make_video, monkeypatch):
    """Zero frames (counted, or none decoding) is an unreadable video, not a ValueError that
    the clip dataset would let through."""
    from harkit.data.video import VideoReadError

    path = make_video("v.mp4", num_frames=6)
    monkeypatch.setattr(PyAVReader, "_indexed_frames", lambda self, p, wanted, last: iter(()))
    with pytest.raises(VideoReadError, match="no frames could be decoded"):
        load_clip(path, SamplingConfig(num_frames=4), backend="pyav")
    real_info = PyAVReader.info

    def no_frames(self, p):
        info = real_info(self, p)
        return VideoInfo(info.path, 0, info.fps, info.width, info.height, info.codec)

    monkeypatch.setattr(PyAVReader, "info", no_frames)
    item = ClipDataset(VideoIndex("one", [VideoItem(path, "a")], ["a"]), SamplingConfig())[0]
    assert isinstance(item, SkippedVideo) and item.reason == "no frames could be decoded"


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(strategy="all"),
        SamplingConfig(strategy="stride", stride=2),
        SamplingConfig(strategy="segments", segment_length=4),
        SamplingConfig(strategy="uniform", num_frames=4),
    ],
    ids=lambda s: s.strategy,
)
def test_sampling_uses_counted_frames_not_a_header_claim(lying_avi, monkeypatch, sampling):
    """An AVI whose header claims 1e9 frames made 'all' allocate 7.45 GiB of indices."""
    import tracemalloc

    import harkit.data.clips as clips

    path = lying_avi(num_frames=12, claimed=10**9)
    asked = []
    real_sample = clips.sample_indices

    def spy(num_frames, config, **kw):
        asked.append(num_frames)
        return real_sample(num_frames, config, **kw)

    monkeypatch.setattr(clips, "sample_indices", spy)
    tracemalloc.start()
    try:
        frames, sampled = load_clip(path, sampling, backend="pyav")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert asked == [12]
    assert peak < 8 * 2**20  # 12 frames of 32x32 and a few indices, not 8 GB of them
    assert int(sampled.mask.sum()) == (
        4 if sampling.strategy == "uniform" else 6 if sampling.strategy == "stride" else 12
    )
    assert frames.shape[-3:] == (32, 32, 3)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_forked_workers_decode_after_the_main_thread_converted_frames(index) -> None:
    """PyAV 18.1.1 converts ``to_ndarray(format=...)`` with one reformatter per thread, kept
    alive; a forked worker inherited it without its swscale threads and its first frame waited
    forever (CI hung here). The timeout turns a hang into a failure."""
    first = index[0].path
    assert len(list(PyAVReader().iter_frames(first))) == 30  # the main thread converts first
    dataset = ClipDataset(index, SamplingConfig(num_frames=4), ClipTransform(TransformConfig(), 32))
    loader = DataLoader(
        dataset,
        batch_size=2,
        num_workers=2,
        collate_fn=collate_clips,
        multiprocessing_context="fork",
        timeout=120,
    )
    assert sum(len(batch["label"]) for batch in loader) == 3  # and broken.mp4 skipped
