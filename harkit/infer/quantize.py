"""int8 frame encoders through onnxruntime quantisation, and how far they are from fp32.

``quantize_onnx(src, dst, calibration)`` writes an int8 copy of an fp32 ONNX graph:

* ``'static'`` (default): QDQ, per-channel int8 weights and uint8 activations whose ranges
  come from ``calibration`` (preprocessed frames, ``(N, C, S, S)``); convolutions run as
  int8 kernels (VNNI where the CPU has it). Activation ranges fitted to frames unlike the
  stream's make the features worse, so calibrate on frames of the kind the model will see.
* ``'dynamic'``: int8 weights, activation ranges per call, no calibration; in onnxruntime it
  speeds up MatMul/Gemm (the FC layers) but not convolutions, so it barely helps a CNN.

int8 changes the features by far more than bf16 does (a few per cent of their scale), so it
is never picked automatically: a stream asks for it (``harkit stream --engine int8``), and
:func:`compare_outputs` measures the error it costs (feature error; top-1 agreement of the
head's probabilities), which the engine logs and the benchmark reports.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from harkit.infer.errors import InferenceError

__all__ = ["QuantMode", "compare_outputs", "quantize_onnx"]

log = logging.getLogger(__name__)

QuantMode = Literal["static", "dynamic"]


def _reader(name: str, batches: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class _Frames(CalibrationDataReader):
        """Feeds the calibration frames one at a time (the graph is batch 1)."""

        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._it, None)
            return None if item is None else {name: np.ascontiguousarray(item[None], np.float32)}

        def rewind(self) -> None:
            self._it = iter(batches)

    return _Frames()


def quantize_onnx(
    src: str | Path,
    dst: str | Path,
    calibration: np.ndarray | None = None,
    mode: QuantMode = "static",
) -> Path:
    """Write an int8 version of the fp32 graph ``src`` to ``dst`` (see the module docstring).

    ``calibration``: preprocessed frames ``(N, C, S, S)``, required for ``'static'``.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency here
        raise InferenceError(f"int8 needs onnxruntime's quantization tools ({exc})") from None
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "dynamic":
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
        return dst
    if mode != "static":
        raise InferenceError(f"unknown quantisation mode {mode!r}; expected static or dynamic")
    if calibration is None or len(calibration) == 0:
        raise InferenceError("static int8 quantisation needs calibration frames")
    name = onnx.load(src, load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        # shape inference + graph optimisation first: ORT's documented pre-step, which lets
        # batch norms fold into the convolutions before their weights are quantised
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            pre,
            dst,
            _reader(name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return dst


def compare_outputs(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How far ``other`` is from ``reference`` (same shape ``(N, D)``): max absolute error
    relative to the reference's largest magnitude, mean cosine similarity, and, read as
    scores, the fraction of rows whose argmax agrees (top-1 agreement)."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    out = np.asarray(other, np.float64).reshape(len(other), -1)
    if ref.shape != out.shape:
        raise InferenceError(f"cannot compare outputs of shapes {ref.shape} and {out.shape}")
    scale = float(np.abs(ref).max()) or 1.0
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.sum(ref * out, axis=1) / np.where(norms > 0, norms, 1.0)
    return {
        "max_rel_error": float(np.abs(ref - out).max() / scale),
        "cosine": float(cos.mean()),
        "top1_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
    }
