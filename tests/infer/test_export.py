"""Export: encoder and head as separate graphs, parity with PyTorch, the ONNX engine."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from harkit.infer import ExportError, Recognizer, export_run


@pytest.mark.parametrize(
    "kind",
    ["gru_features", "bilstm_crnn", "attention_two_layer", "wide_features", "grid_features"],
)
def test_onnx_export_parity_and_dynamic_axes(kind, make_run):
    run = make_run(kind)
    report = export_run(run)
    folder = run / "onnx"
    assert report.out_dir == str(folder)
    assert {"head.onnx", "export.json"} <= set(report.files)
    assert any(f.startswith("encoder_") for f in report.files)
    # Parity is checked at other batch sizes / lengths than the traced ones.
    assert report.max_abs_diff and max(report.max_abs_diff.values()) < 1e-4
    head = onnx.load(str(folder / "head.onnx"))
    dims = head.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # dynamic batch and time
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["head"]["full_length_only"] is True


def test_onnx_engine_matches_torch(make_run, make_video):
    run, video = make_run("gru_features"), make_video()
    export_run(run)
    onnx_rec = Recognizer.from_run(run, engine="onnx")
    assert all(b.runner is not None for b in onnx_rec.model.encoder.branches)
    assert onnx_rec.model.head_runner is not None
    a = Recognizer.from_run(run, fast=False).predict(video)
    b = onnx_rec.predict(video)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    assert a.label == b.label


def test_torchscript_export(make_run):
    report = export_run(make_run("c3d"), format="torchscript")
    assert "head.pt" in report.files and max(report.max_abs_diff.values()) < 1e-5


def test_onnx_engine_without_export_is_a_clear_error(make_run):
    with pytest.raises(ExportError, match="harkit export"):
        Recognizer.from_run(make_run("small2d"), engine="onnx")
