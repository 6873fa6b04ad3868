"""Damaged flow output: truncated/empty .npz files, a corrupt flow_config.json or
flow_skipped.json, an output path that is a file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from harkit.data.clips import SkippedVideo
from harkit.data.datasets import VideoIndex
from harkit.errors import HarkitError
from harkit.flow import (
    FlowDataset,
    FlowFileError,
    check_flow_file,
    compute_dataset_flow,
    load_flow,
    save_flow,
    skip_report_path,
)


def _flow_file(tmp_path: Path) -> Path:
    flow = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 2), dtype=np.uint8)
    return save_flow(tmp_path / "v.mp4.npz", flow, [0, 1, 2, 3], "dis")


def test_empty_or_truncated_file_is_a_flow_file_error(tmp_path: Path) -> None:
    path = _flow_file(tmp_path)
    assert check_flow_file(path) is None
    data = path.read_bytes()
    cases = [
        (b"", "is empty", "No data left in file"),
        (data[:-40], "is unreadable (File is not a zip file)", "File is not a zip file"),
    ]
    for cut, problem, detail in cases:
        path.write_bytes(cut)
        assert check_flow_file(path) == problem
        with pytest.raises(FlowFileError) as info:
            load_flow(path)
        assert str(info.value) == (
            f"{path}: unreadable flow file ({detail}); `harkit flow` recomputes it"
        )
    # damage inside the compressed flow keeps the zip directory: the CRC catches it on read
    broken = bytearray(data)
    start = data.index(b"flow.npy") + 200
    broken[start : start + 50] = b"\0" * 50
    path.write_bytes(bytes(broken))
    with pytest.raises(FlowFileError, match="unreadable flow file"):
        load_flow(path)


def test_flow_run_recomputes_damaged_files(
    index: VideoIndex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "flow"
    compute_dataset_flow(index, out, "dis-fast", size=24, progress=False)
    cut, empty = out / "left" / "c0.mp4.npz", out / "right" / "c2.mp4.npz"
    good = load_flow(cut).flow
    cut.write_bytes(cut.read_bytes()[:-100])
    empty.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="harkit.flow.extract"):
        again = compute_dataset_flow(index, out, "dis-fast", size=24, progress=False)
    assert (again.recomputed, again.computed, again.existing) == (2, 2, len(index) - 2)
    assert f"flow file {cut} is unreadable (File is not a zip file): recomputing it" in [
        r.getMessage() for r in caplog.records
    ]
    np.testing.assert_array_equal(load_flow(cut).flow, good)
    assert check_flow_file(empty) is None


def test_dataset_skips_and_names_a_damaged_file(index: VideoIndex, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    compute_dataset_flow(index, out, "dis-fast", size=24, progress=False)
    dataset = FlowDataset(index, out, size=16)
    dataset.flow_path(1).write_bytes(b"")
    item = dataset[1]
    assert isinstance(item, SkippedVideo) and item.path == str(index[1].path)
    assert item.reason == (
        f"{dataset.flow_path(1)}: unreadable flow file (No data left in file); "
        "`harkit flow` recomputes it"
    )
    assert not isinstance(dataset[0], SkippedVideo)


def test_corrupt_flow_config_is_one_line(index: VideoIndex, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    compute_dataset_flow(index, out, "dis-fast", size=24, progress=False)
    (out / "flow_config.json").write_text('{"method": "dis-f')
    expected = (
        f"{out / 'flow_config.json'} is not a readable flow config (Unterminated string "
        f"starting at: line 1 column 12 (char 11)); recompute the folder {out} with "
        "`harkit flow --overwrite` (or delete it)"
    )
    with pytest.raises(HarkitError) as info:
        compute_dataset_flow(index, out, "dis-fast", size=24, progress=False)
    assert str(info.value) == expected
    with pytest.raises(HarkitError) as info:
        FlowDataset(index, out)
    assert str(info.value) == expected
    done = compute_dataset_flow(index, out, "dis-fast", size=24, progress=False, overwrite=True)
    assert done.computed == len(index)
    assert FlowDataset(index, out).video_root == index[0].path.parents[1]


def test_corrupt_skip_report_is_rebuilt(
    broken_index: VideoIndex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "flow"
    out.mkdir()
    skip_report_path(out).write_bytes(b"\xff\xfe not json")
    with caplog.at_level(logging.WARNING):
        summary = compute_dataset_flow(broken_index, out, "dis-fast", size=24, progress=False)
    assert summary.skipped == 1
    assert list(json.loads(summary.skip_report.read_text())) == [
        str(next(i.path for i in broken_index if i.path.name == "broken.mp4"))
    ]
    warnings = [r.getMessage() for r in caplog.records if "was unreadable" in r.getMessage()]
    assert warnings == [
        f"{summary.skip_report} was unreadable ('utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte); rebuilt it with 0 entries"
    ]


def test_output_path_that_is_a_file(index: VideoIndex, tmp_path: Path) -> None:
    (tmp_path / "flow").write_text("oops")
    with pytest.raises(HarkitError) as info:
        compute_dataset_flow(index, tmp_path / "flow" / "sub", "dis-fast", progress=False)
    assert str(info.value) == (
        f"{tmp_path / 'flow'} is a file, not a folder; flow output needs a folder there "
        "(move the file away or choose another --out)"
    )
