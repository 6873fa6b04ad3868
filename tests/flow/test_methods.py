from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.errors import HarkitError
from harkit.flow import FLOW_METHODS, FlowMethodError, RaftFlow, compute_flow, compute_pairs
from tests.helpers.flow import shifted, texture

CPU_METHODS = ["tvl1", "farneback", "dis", "dis-fast"]


@pytest.mark.parametrize("method", CPU_METHODS)
@pytest.mark.parametrize(("dx", "dy"), [(2.0, -1.0), (-1.5, 2.5)])
def test_recovers_known_translation(method: str, dx: float, dy: float) -> None:
    image = texture(64, 64)
    flow = compute_flow(image, shifted(image, dx, dy), method)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[8:-8, 8:-8].reshape(-1, 2)
    median = np.median(inner, axis=0)
    assert abs(median[0] - dx) < 0.5 and abs(median[1] - dy) < 0.5, median


@pytest.mark.parametrize("method", CPU_METHODS)
def test_zero_motion_gives_zero_flow(method: str) -> None:
    image = texture(48, 64)
    flow = compute_flow(image, image, method)
    assert flow.shape == (48, 64, 2)
    assert np.abs(flow).mean() < 0.01 and np.abs(flow[8:-8, 8:-8]).max() < 0.01


def test_compute_pairs_shape_and_order() -> None:
    base = texture(64, 64)
    frames = np.stack([shifted(base, 1.0 * t, 0.0) for t in range(4)])
    flow = compute_pairs(frames, "dis")
    assert flow.shape == (3, 64, 64, 2)
    assert np.allclose(np.median(flow[:, 8:-8, 8:-8, 0], axis=(1, 2)), 1.0, atol=0.3)


def test_bad_inputs_are_refused() -> None:
    image = texture(32, 32)
    with pytest.raises(ValueError, match="grayscale"):
        compute_flow(image, image[:16], "farneback")
    with pytest.raises(ValueError, match="uint8"):
        compute_flow(image.astype(np.float32), image.astype(np.float32), "farneback")
    with pytest.raises(FlowMethodError, match="unknown flow method 'nope'") as info:
        compute_flow(image, image, "nope")
    assert isinstance(info.value, HarkitError)


def test_registry_lists_every_method() -> None:
    assert {"tvl1", "farneback", "dis", "dis-fast", "raft-small", "raft-large"} <= set(FLOW_METHODS)


def test_raft_without_weights_names_file_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FlowMethodError) as info:
        RaftFlow("small", device="cpu")
    message = str(info.value)
    assert "raft_small_C_T_V2-01064c6d.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message


def test_raft_runs_from_a_local_weights_file(tmp_path: Path) -> None:
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    method = RaftFlow("small", weights=weights, device="cpu", batch_size=2)
    # 4 frames = 3 pairs: the last batch holds one pair, (T-1) mod batch != 0 crashed before
    frames = np.stack([texture(36, 44, seed=s) for s in range(4)])  # not multiples of 8
    flow = method.pairs(frames)
    assert flow.shape == (3, 36, 44, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    for i in (0, 2):
        np.testing.assert_allclose(method(frames[i], frames[i + 1]), flow[i], atol=1e-3)
