"""Inference on trained runs: :class:`Recognizer` (files, folders, arrays), continuous
recognition on streams (:mod:`harkit.infer.stream`) and ONNX / TorchScript export."""

from harkit.infer.errors import ExportError, InferenceError, SourceError
from harkit.infer.export import ExportReport, attach_onnx, export_run
from harkit.infer.pipeline import Branch, Encoder, SplitModel, split_model
from harkit.infer.recognizer import Prediction, Recognizer
from harkit.infer.stream import (
    Decision,
    IncrementalDecoder,
    LabelSmoother,
    StreamConfig,
    StreamRecognizer,
    StreamStats,
    open_source,
    run_stream,
)

__all__ = [
    "Branch",
    "Decision",
    "Encoder",
    "ExportError",
    "ExportReport",
    "IncrementalDecoder",
    "InferenceError",
    "LabelSmoother",
    "Prediction",
    "Recognizer",
    "SourceError",
    "SplitModel",
    "StreamConfig",
    "StreamRecognizer",
    "StreamStats",
    "attach_onnx",
    "export_run",
    "open_source",
    "run_stream",
    "split_model",
]
