"""flow_hist: where and which way things move, from a flow field, with no weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harkit.backbones import WeightsLoadError, create_backbone, get_backbone_spec
from harkit.backbones.motion import FlowHistogram

GRID, BINS = 4, 8


def _patch_flow(dx: float, dy: float, rows: slice, cols: slice, camera=(0.0, 0.0)) -> torch.Tensor:
    flow = torch.zeros(1, 2, 64, 80)
    flow[:, 0], flow[:, 1] = camera
    flow[0, 0, rows, cols] += dx
    flow[0, 1, rows, cols] += dy
    return flow


def _cells(features: torch.Tensor) -> torch.Tensor:
    return features.view(GRID, GRID, BINS)


def test_spec_and_shape():
    spec = get_backbone_spec("flow_hist")
    assert (spec.kind, spec.in_channels, spec.feature_dim) == ("frame", 2, GRID * GRID * BINS)
    net = create_backbone("flow_hist", "none")
    assert net(torch.randn(3, 2, 224, 298) * 0.1).shape == (3, 128)


def test_a_patch_moving_right_fills_the_right_bin_of_its_cell():
    hist = FlowHistogram()
    # top-left cell (rows 0-15, cols 0-19 of 64x80) moves right; the rest is still
    cells = _cells(hist(_patch_flow(0.5, 0.0, slice(0, 16), slice(0, 20)))[0])
    assert cells[0, 0].argmax() == 0  # bin 0: direction +x
    assert cells[0, 0, 0] == pytest.approx(0.5)
    assert cells[0, 0, 4] == 0  # opposite direction (-x): rectified away
    assert cells[1:].abs().max() == 0 and cells[0, 1:].abs().max() == 0  # other cells still
    left = _cells(hist(_patch_flow(-0.5, 0.0, slice(0, 16), slice(0, 20)))[0])
    assert left[0, 0].argmax() == 4 and left[0, 0, 4] == pytest.approx(0.5)
    down = _cells(hist(_patch_flow(0.0, 0.5, slice(48, 64), slice(60, 80)))[0])
    assert down[3, 3].argmax() == 2  # +y (image rows grow downwards)


def test_camera_motion_is_removed():
    hist = FlowHistogram()
    still = hist(_patch_flow(0.4, 0.0, slice(0, 16), slice(0, 20)))
    panning = hist(_patch_flow(0.4, 0.0, slice(0, 16), slice(0, 20), camera=(0.2, -0.1)))
    torch.testing.assert_close(panning, still)
    assert hist(torch.full((2, 2, 32, 32), 0.3)).abs().max() == 0  # pure pan: no motion


def test_a_mirrored_clip_swaps_left_and_right():
    torch.manual_seed(0)
    # motion on a third of the pixels: the camera estimate (median) is 0 both ways
    flow = torch.randn(2, 2, 32, 40) * 0.2 * (torch.rand(2, 1, 32, 40) < 0.3)
    mirrored = flow.flip(-1)
    mirrored[:, 0] = -mirrored[:, 0]
    hist = FlowHistogram()
    a, b = (_cells(hist(f)[0]) for f in (flow, mirrored))
    # cell column j mirrors to GRID-1-j; direction bin k (angle 45k deg) mirrors to (4-k) % 8
    got = b.flip(1)[:, :, [(4 - k) % BINS for k in range(BINS)]]
    torch.testing.assert_close(got, a, atol=1e-6, rtol=1e-5)


def test_bad_inputs_and_weights_are_refused():
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        FlowHistogram()(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 4x4"):
        FlowHistogram()(torch.zeros(1, 2, 3, 32))
    with pytest.raises(WeightsLoadError, match="'flow_hist' has no 'imagenet' weights"):
        create_backbone("flow_hist", "imagenet")


def test_onnx_export_matches(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    hist = FlowHistogram().eval()
    flow = torch.randn(3, 2, 48, 62) * 0.1
    path = tmp_path / "hist.onnx"
    torch.onnx.export(
        hist,
        (flow,),
        str(path),
        input_names=["flow"],
        output_names=["f"],
        dynamic_axes={"flow": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"flow": flow.numpy()})[0]
    np.testing.assert_allclose(got, hist(flow).detach().numpy(), atol=1e-6)
