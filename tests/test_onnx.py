"""harkit.onnx: the one exporter (round trip, atomic write), the graph cache and its key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import harkit.onnx
from harkit.onnx import (
    GraphSpec,
    cached_export,
    cached_session,
    export_onnx,
    module_digest,
    onnx_session,
)

pytest.importorskip("onnxruntime")


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def _spec(module: nn.Module, shape: tuple[int, ...] = (2, 3, 8, 8)) -> GraphSpec:
    return GraphSpec(
        name="tiny",
        identity={"module": module_digest(module)},
        input_shape=shape,
        input_names=("frames",),
        output_names=("features0",),
        dynamic_axes={"frames": {0: "batch"}, "features0": {0: "batch"}},
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path))
    return tmp_path / "onnx"


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths harkit.onnx exports to, in call order."""
    calls: list[Path] = []
    real = harkit.onnx.export_onnx

    def counting(module, example, path, **kwargs):
        calls.append(Path(path))
        return real(module, example, path, **kwargs)

    monkeypatch.setattr(harkit.onnx, "export_onnx", counting)
    return calls


def test_export_round_trip_matches_torch(tmp_path: Path) -> None:
    module = _tiny()
    path = export_onnx(
        module,
        torch.zeros(2, 3, 8, 8),
        tmp_path / "tiny.onnx",
        input_names=["frames"],
        output_names=["features0"],
        dynamic_axes={"frames": {0: "batch"}, "features0": {0: "batch"}},
    )
    sess = onnx_session(path)
    assert [i.name for i in sess.get_inputs()] == ["frames"]
    assert [o.name for o in sess.get_outputs()] == ["features0"]
    x = torch.rand(5, 3, 8, 8)  # another batch than traced: the axis is dynamic
    with torch.no_grad():
        want = module(x).numpy()
    np.testing.assert_allclose(sess.run(None, {"frames": x.numpy()})[0], want, atol=1e-5)


def test_second_export_is_a_cache_hit(cache: Path, exports: list[Path]) -> None:
    module = _tiny()
    spec = _spec(module)
    path = cached_export(spec, module)
    assert path.parent == cache and path.name.startswith("tiny-") and exports == [path]
    stamp = path.stat().st_mtime_ns
    assert cached_export(spec, module) == path
    cached_session(spec, module)
    assert exports == [path] and path.stat().st_mtime_ns == stamp


def test_cache_key_follows_weights_and_shape() -> None:
    module = _tiny()
    before = _spec(module).path()
    assert _spec(_tiny()).path() == before  # same weights, other object: same graph
    assert _spec(module, (2, 3, 16, 16)).path() != before
    with torch.no_grad():
        module[0].weight[0, 0, 0, 0] += 1.0
    assert _spec(module).path() != before


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("unsupported operator")

    target = tmp_path / "graph.onnx"
    with pytest.raises(RuntimeError, match="unsupported operator"):
        export_onnx(Broken(), torch.zeros(1, 3), target, input_names=["x"], output_names=["y"])
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temp file
    # over an earlier graph, a failed export keeps it whole
    target.write_bytes(b"earlier graph")
    with pytest.raises(RuntimeError):
        export_onnx(Broken(), torch.zeros(1, 3), target, input_names=["x"], output_names=["y"])
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"earlier graph"


def test_damaged_cache_file_is_exported_again(cache: Path, exports: list[Path]) -> None:
    module = _tiny()
    spec = _spec(module)
    path = cached_export(spec, module)
    path.write_bytes(b"truncated")  # damaged outside harkit
    sess = cached_session(spec, module)
    assert exports == [path, path]
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"frames": x.numpy()})[0], module(x), atol=1e-5)


def test_import_stays_light() -> None:
    # the CLI reads OPSET while it builds its parser: no torch there
    code = "import sys, harkit.onnx; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
