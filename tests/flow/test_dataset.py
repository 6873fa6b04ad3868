from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.data.clips import SkippedVideo, collate_clips
from harkit.data.datasets import VideoIndex
from harkit.data.sampling import SamplingConfig
from harkit.flow import FlowDataset, compute_dataset_flow, flow_to_tensor, quantize_flow


@pytest.fixture
def flow_root(index: VideoIndex, tmp_path: Path) -> Path:
    out = tmp_path / "flow"
    compute_dataset_flow(index, out, "dis", size=48, progress=False)  # stored at 48x64
    return out


def _position(index: VideoIndex, label: str, name: str) -> int:
    return next(i for i, it in enumerate(index) if it.label == label and it.path.name == name)


def test_item_shape_range_and_scaled_motion(index: VideoIndex, flow_root: Path) -> None:
    data = FlowDataset(index, flow_root, size=32)
    i = _position(index, "right", "c1.mp4")
    item = data[i]
    assert item["video"].shape == (8, 2, 32, 32) and item["video"].dtype == torch.float32
    assert item["video"].abs().max() <= 1.0
    assert item["mask"].tolist() == [True] * 8
    assert item["label"] == index.classes.index("right") and item["index"] == i
    # 2 px/frame at the 48 px working size, resized to 32: 2 * 32/48 px, over the bound of 20
    x_motion = item["video"][:, 0, 4:-4, 4:-4].median().item()
    assert x_motion == pytest.approx(2 * 32 / 48 / 20, abs=0.02)
    assert item["video"][:, 1, 4:-4, 4:-4].median().abs().item() < 0.02
    left = data[_position(index, "left", "c1.mp4")]["video"][:, 0, 4:-4, 4:-4].median().item()
    assert left == pytest.approx(-2 * 32 / 48 / 20, abs=0.02)


def test_hflip_negates_horizontal_motion(index: VideoIndex, flow_root: Path) -> None:
    i = _position(index, "right", "c0.mp4")
    flipped = FlowDataset(index, flow_root, size=32, train=True, hflip=1.0)[i]["video"]
    assert flipped[:, 0, 4:-4, 4:-4].median().item() < -0.03


def test_sampling_picks_pairs(index: VideoIndex, flow_root: Path) -> None:
    i = _position(index, "left", "c0.mp4")  # 8 frames -> 7 pairs
    segments = FlowDataset(index, flow_root, SamplingConfig(strategy="segments", segment_length=4))
    item = segments[i]
    assert item["video"].shape == (2, 4, 2, 224, 224)
    assert item["mask"].tolist() == [[True] * 4, [True, True, True, False]]
    uniform = FlowDataset(index, flow_root, SamplingConfig(num_frames=4), size=40)[i]
    assert uniform["video"].shape == (4, 2, 40, 40)


def test_missing_flow_is_a_skip_marker(index: VideoIndex, flow_root: Path) -> None:
    i = _position(index, "left", "c2.mp4")
    (flow_root / "left" / "c2.mp4.npz").unlink()
    data = FlowDataset(index, flow_root, size=32)
    skipped = data[i]
    assert isinstance(skipped, SkippedVideo) and "not found" in skipped.reason
    batch = collate_clips([data[j] for j in range(len(index))])
    assert [s.index for s in batch["skipped"]] == [i]
    assert batch["video"].shape == (5, 9, 2, 32, 32)  # longest clip: 10 frames, 9 pairs
    assert batch["lengths"].tolist() == [7, 8, 7, 8, 9]  # left c0-c1, right c0-c2


def test_subset_finds_files_through_stored_root(index: VideoIndex, flow_root: Path) -> None:
    right = index.select(it for it in index if it.label == "right")
    items = [FlowDataset(right, flow_root, size=32)[k] for k in range(len(right))]
    assert not any(isinstance(it, SkippedVideo) for it in items)


def test_flow_to_tensor_center_crop_is_exact() -> None:
    rng = np.random.default_rng(0)
    flow = rng.uniform(-20, 20, (3, 10, 12, 2)).astype(np.float32)
    q = quantize_flow(flow)
    out = flow_to_tensor(q, 8, resize=10)
    assert out.shape == (3, 2, 8, 8)
    expected = torch.from_numpy(q[:, 1:9, 2:10].astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="resize"):
        FlowDataset(VideoIndex("x", [], ["a"]), ".", size=224, resize=200)


def test_a_wide_crop_keeps_the_whole_frame_and_pads_portrait_flow() -> None:
    # 48x64 (4:3) flow, crop [24, 32]: the whole frame at half size, displacements halved
    flow = np.full((2, 48, 64, 2), 127.5 + 127.5 * 0.4, dtype=np.float32)
    quantized = np.round(flow).astype(np.uint8)
    out = flow_to_tensor(quantized, [24, 32])
    assert out.shape == (2, 2, 24, 32)
    assert float(out.mean()) == pytest.approx(0.2, abs=0.01)
    # a portrait field under the same crop: resized to width 24, zero motion padded at the sides
    out = flow_to_tensor(quantized[:, :, :48].transpose(0, 2, 1, 3).copy(), [24, 32])  # 64x48
    assert out.shape == (2, 2, 24, 32)
    assert float(out[..., :4].abs().max()) == 0 and float(out[..., 4:28].abs().min()) > 0.1
