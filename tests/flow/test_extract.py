from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.data.clips import SkipReport
from harkit.data.datasets import VideoIndex
from harkit.data.jobs import resolve_shard, shard_indices
from harkit.data.sampling import SamplingConfig
from harkit.data.video import VideoReadError
from harkit.errors import HarkitError
from harkit.flow import (
    FlowConfig,
    compute_dataset_flow,
    flow_file_path,
    load_flow,
    to_gray,
    video_flow,
)


def test_to_gray_resizes_shorter_side() -> None:
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    assert to_gray(frame, 24).shape == (24, 32)
    assert to_gray(frame, 96).shape == (96, 128)
    assert to_gray(frame, None).shape == (48, 64)


def test_video_flow_recovers_motion(video_tree: Path) -> None:
    flow, indices = video_flow(video_tree / "right" / "c0.mp4", FlowConfig(method="dis", size=None))
    assert flow.dtype == np.uint8 and flow.shape == (7, 48, 64, 2)
    assert indices.tolist() == list(range(8))
    motion = load_like(flow)
    assert abs(np.median(motion[:, 8:-8, 8:-16, 0]) - 2.0) < 0.5
    assert abs(np.median(motion[:, 8:-8, 8:-16, 1])) < 0.5


def load_like(flow: np.ndarray) -> np.ndarray:
    from harkit.flow import decode_flow

    return decode_flow(flow)


def test_video_flow_between_sampled_frames(video_tree: Path) -> None:
    config = FlowConfig(
        method="farneback", size=24, sampling=SamplingConfig(strategy="stride", stride=3)
    )
    flow, indices = video_flow(video_tree / "left" / "c0.mp4", config)
    assert indices.tolist() == [0, 3, 6]
    assert flow.shape == (2, 24, 32, 2)
    # 3 frames apart at half size: -2 * 3 / 2 = -3 px
    assert abs(np.median(load_like(flow)[:, 4:-4, 8:-4, 0]) + 3.0) < 0.6


def test_video_flow_drops_padding_repeats(video_tree: Path) -> None:
    config = FlowConfig(method="farneback", size=24, sampling=SamplingConfig(num_frames=12))
    _, indices = video_flow(video_tree / "left" / "c0.mp4", config)  # 8 frames < 12 asked
    assert indices.tolist() == list(range(8))


def test_single_frame_video_is_an_error(tmp_path: Path) -> None:
    from harkit.synth import write_video

    path = write_video(tmp_path / "one.mp4", np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(VideoReadError, match="at least 2"):
        video_flow(path, FlowConfig(method="farneback", size=None))


def test_dataset_flow_files_resume_and_skip(broken_index: VideoIndex, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    summary = compute_dataset_flow(broken_index, out, "farneback", size=32, progress=False)
    assert (summary.videos, summary.computed, summary.skipped, summary.existing) == (7, 6, 1, 0)
    files = sorted(out.rglob("*.npz"))
    assert [f.relative_to(out).as_posix() for f in files] == [
        f"{label}/c{k}.mp4.npz" for label in ("left", "right") for k in range(3)
    ]
    stored = load_flow(out / "right" / "c1.mp4.npz")
    assert stored.flow.dtype == np.uint8 and stored.flow.shape == (8, 32, 43, 2)
    assert stored.indices.tolist() == list(range(9)) and stored.method == "farneback"

    report = SkipReport(summary.skip_report)
    assert summary.skip_report == out / "flow_skipped.json"
    broken = next(item.path for item in broken_index if item.path.name == "broken.mp4")
    assert list(report.entries) == [str(broken)]
    assert "empty" in next(iter(report.entries.values()))

    mtimes = {f: f.stat().st_mtime_ns for f in files}
    again = compute_dataset_flow(broken_index, out, "farneback", size=32, progress=False)
    assert (again.computed, again.existing, again.skipped) == (0, 6, 1)
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    assert not list(out.rglob("*.tmp"))


def test_other_settings_in_same_folder_are_refused(index: VideoIndex, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    compute_dataset_flow(index, out, "farneback", size=24, progress=False)
    with pytest.raises(HarkitError, match="method"):
        compute_dataset_flow(index, out, "dis", size=24, progress=False)
    first = (out / "left" / "c0.mp4.npz").stat().st_mtime_ns
    done = compute_dataset_flow(index, out, "dis", size=24, progress=False, overwrite=True)
    assert done.computed == 6
    assert load_flow(out / "left" / "c0.mp4.npz").method == "dis"
    assert (out / "left" / "c0.mp4.npz").stat().st_mtime_ns != first
    assert json.loads((out / "flow_config.json").read_text())["method"] == "dis"


def test_bad_settings_are_config_errors(index: VideoIndex, tmp_path: Path) -> None:
    with pytest.raises(HarkitError, match="unknown flow method"):
        compute_dataset_flow(index, tmp_path, "sift", progress=False)
    with pytest.raises(HarkitError, match="size"):
        compute_dataset_flow(index, tmp_path, "dis", size=0, progress=False)


def test_process_pool_matches_in_process(index: VideoIndex, tmp_path: Path) -> None:
    serial = compute_dataset_flow(index, tmp_path / "a", "dis-fast", size=24, progress=False)
    pooled = compute_dataset_flow(
        index, tmp_path / "b", "dis-fast", size=24, num_workers=2, progress=False
    )
    assert serial.computed == pooled.computed == 6 and serial.pairs == pooled.pairs
    for item in index:
        a = load_flow(flow_file_path(item.path, index[0].path.parents[1], tmp_path / "a"))
        b = load_flow(flow_file_path(item.path, index[0].path.parents[1], tmp_path / "b"))
        np.testing.assert_array_equal(a.flow, b.flow)


def test_rank_shards_are_disjoint_and_complete(index: VideoIndex, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    seen = []
    for rank in (0, 1):
        summary = compute_dataset_flow(
            index, out, "dis-fast", size=24, rank=rank, world_size=2, progress=False
        )
        assert summary.skip_report.name == f"flow_skipped.rank{rank}.json"
        seen.append(
            {p for p in out.rglob("*.npz")} - set().union(*seen)
            if seen
            else set(out.rglob("*.npz"))
        )
        assert summary.computed == 3
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == len(index)
    assert shard_indices(7, 0, 2) == [0, 2, 4, 6] and shard_indices(7, 1, 2) == [1, 3, 5]


def test_shard_defaults_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_shard() == (2, 4)
    assert resolve_shard(1, 2) == (1, 2)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert resolve_shard() == (0, 1)
    with pytest.raises(HarkitError, match="rank"):
        resolve_shard(2, 2)
