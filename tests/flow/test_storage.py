from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harkit.flow import (
    FlowFileError,
    decode_flow,
    flow_file_path,
    load_flow,
    quantize_flow,
    save_flow,
)


def test_quantise_round_trip_and_clip() -> None:
    rng = np.random.default_rng(0)
    flow = rng.uniform(-30, 30, (5, 16, 16, 2)).astype(np.float32)
    q = quantize_flow(flow)
    assert q.dtype == np.uint8 and q.shape == flow.shape
    back = decode_flow(q)
    assert back.dtype == np.float32
    clipped = np.clip(flow, -20, 20)
    assert np.abs(back - clipped).max() <= 20 / 127.5
    assert back.min() >= -20 and back.max() <= 20
    assert q[flow >= 20].min() == 255 and q[flow <= -20].max() == 0


def test_quantise_bound_and_normalised_view() -> None:
    flow = np.array([[-10.0, 0.0], [5.0, 10.0]], dtype=np.float32)
    q = quantize_flow(flow, bound=10.0)
    assert q.tolist() == [[0, 128], [191, 255]]
    np.testing.assert_allclose(q / 127.5 - 1, flow / 10.0, atol=1 / 127.5)
    with pytest.raises(ValueError, match="uint8"):
        decode_flow(flow)


def test_save_and_load(tmp_path: Path) -> None:
    flow = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 2), dtype=np.uint8)
    path = save_flow(tmp_path / "a" / "v.avi.npz", flow, [0, 2, 4, 6], "dis", 20.0)
    stored = load_flow(path)
    np.testing.assert_array_equal(stored.flow, flow)
    assert stored.indices.tolist() == [0, 2, 4, 6]
    assert stored.method == "dis" and stored.bound == 20.0
    assert stored.displacement().shape == (3, 8, 10, 2)
    assert [p.name for p in path.parent.iterdir()] == ["v.avi.npz"]  # no temp file left


def test_save_checks_shapes(tmp_path: Path) -> None:
    flow = np.zeros((3, 8, 8, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="4 frame indices"):
        save_flow(tmp_path / "x.npz", flow, [0, 1, 2], "dis")
    with pytest.raises(ValueError, match="uint8"):
        save_flow(tmp_path / "x.npz", flow.astype(np.float32), [0, 1, 2, 3], "dis")


def test_load_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FlowFileError, match="not found"):
        load_flow(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FlowFileError, match="unreadable"):
        load_flow(bad)


def test_flow_file_path_mirrors_tree(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    path = flow_file_path(root / "Diving" / "v_1.avi", root, tmp_path / "flow")
    assert path == tmp_path / "flow" / "Diving" / "v_1.avi.npz"
    frames_dir = flow_file_path(root / "Diving" / "v_1", root, tmp_path / "flow")
    assert frames_dir.name == "v_1.npz"
    # A video outside the root (an absolute path in a CSV) keeps its absolute path, inside flow/.
    outside = flow_file_path(tmp_path / "elsewhere.mp4", root, tmp_path / "flow")
    assert outside == tmp_path / "flow" / "_abs" / f"{str(tmp_path).lstrip('/')}/elsewhere.mp4.npz"
