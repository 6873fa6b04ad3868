"""Inference on trained runs: :class:`Recognizer` (files, folders, arrays), continuous
recognition on streams (:mod:`harkit.infer.stream`; sources in :mod:`harkit.infer.sources`),
ONNX / TorchScript export, long videos (:mod:`harkit.infer.windows`) and the optical flow of
two-stream runs (:mod:`harkit.infer.flow`)."""

from harkit.infer.decoder import IncrementalDecoder
from harkit.infer.device import check_device
from harkit.infer.errors import ExportError, InferenceError, SourceError, WindowError
from harkit.infer.export import ExportReport, attach_onnx, export_run
from harkit.infer.pipeline import Branch, Encoder, SplitModel, split_model
from harkit.infer.recognizer import Clip, Prediction, Recognizer
from harkit.infer.smoothing import Decision, LabelSmoother
from harkit.infer.sources import open_source
from harkit.infer.stream import StreamRecognizer, StreamStats, run_stream
from harkit.infer.stream_plan import StreamConfig
from harkit.infer.windows import Segment, VideoSegments, WindowPrediction

__all__ = [
    "Branch",
    "Clip",
    "Decision",
    "Encoder",
    "ExportError",
    "ExportReport",
    "IncrementalDecoder",
    "InferenceError",
    "LabelSmoother",
    "Prediction",
    "Recognizer",
    "Segment",
    "SourceError",
    "SplitModel",
    "StreamConfig",
    "StreamRecognizer",
    "StreamStats",
    "VideoSegments",
    "WindowError",
    "WindowPrediction",
    "attach_onnx",
    "check_device",
    "export_run",
    "open_source",
    "run_stream",
    "split_model",
]
