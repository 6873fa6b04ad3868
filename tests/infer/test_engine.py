"""The stream's fast per-frame engine: preprocessing twin, ORT fp32 / int8 against fp32."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import harkit.onnx
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.infer import engine as engine_mod
from harkit.infer.engine import FLOAT_TOLERANCE, FramePrep, build_stream_engine, probe_frames
from harkit.infer.errors import InferenceError
from harkit.infer.pipeline import split_model
from harkit.infer.quantize import compare_outputs
from harkit.infer.sources import Frame, FrameSource
from harkit.infer.stream import run_stream
from harkit.infer.stream_plan import StreamConfig
from harkit.train.run import load_run

# int8 is a few per cent of the feature scale off fp32 (see harkit.infer.quantize); cosine
# similarity is the stable measure of it on small random networks
INT8_MIN_COSINE = 0.98


class _Frames(FrameSource):
    """Frames from memory, as fast as they are read."""

    name = "memory"

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def frames(self) -> Iterator[Frame]:
        for i, image in enumerate(self.images):
            yield Frame(i, i / self.fps, image)


def _split(run, fast: bool = True):
    recipe, classes, net = load_run(run)
    return split_model(recipe, classes, net, fast=fast)


@pytest.mark.parametrize(
    ("size", "config", "mean"),
    [
        ((240, 320), TransformConfig(), (0.485, 0.456, 0.406)),
        ((97, 61), TransformConfig(resize=40, crop_size=32), (0.5, 0.5, 0.5)),
        ((64, 64), TransformConfig(resize=32, crop_size=32), (0.1, 0.2, 0.3)),
        ((60, 80), TransformConfig(crop_size=(30, 40)), (0.5, 0.5, 0.5)),  # the whole frame
        ((80, 60), TransformConfig(crop_size=(30, 40)), (0.5, 0.5, 0.5)),  # padded sides
    ],
)
def test_frame_prep_equals_clip_transform(size, config, mean):
    transform = ClipTransform(config, 224, mean, (0.2, 0.25, 0.3))
    prep = FramePrep.from_transform(transform)
    assert prep is not None
    for frame in probe_frames(3, size, seed=1):
        expected = transform(frame[None])
        got = prep(frame)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_frame_prep_refuses_training_transforms():
    config = TransformConfig(resize=40, crop_size=32, random_crop=True, hflip=0.5)
    assert FramePrep.from_transform(ClipTransform(config, 32, train=True)) is None


@pytest.mark.parametrize(
    "kind",
    ["gru_features", "attention_two_layer", "bilstm_crnn", "wide_features", "grid_features"],
)
def test_onnx_engine_matches_fp32_encoder(make_run, kind):
    fast = _split(make_run(kind))
    engine = build_stream_engine(fast, "onnx")
    assert engine is not None and engine.kind == "onnx"
    assert engine.check["max_rel_error"] < FLOAT_TOLERANCE
    reference = _split(make_run(kind), fast=False).encoder
    for frame in probe_frames(3, (50, 70), seed=2):
        expected = reference.encode(frame[None])
        got = engine.encode(frame[None])
        assert got.shape == expected.shape == (1, reference.output_dim)
        scale = expected.abs().max()
        assert (got - expected).abs().max() <= FLOAT_TOLERANCE * scale


def test_auto_engine_choice(make_run):
    run = make_run("gru_features")
    assert build_stream_engine(_split(run, fast=False), "auto") is None  # the fp32 reference
    assert build_stream_engine(_split(run), "torch") is None
    engine = build_stream_engine(_split(run), "auto")
    assert engine is not None and engine.kind == "onnx"  # never int8 unless asked
    segments = _split(make_run("segments_r3d"))
    assert build_stream_engine(segments, "auto") is None
    with pytest.raises(InferenceError, match="frame"):
        build_stream_engine(segments, "onnx")
    with pytest.raises(InferenceError, match="unknown stream engine"):
        build_stream_engine(segments, "tensorrt")  # type: ignore[arg-type]


def test_engine_off_fp32_is_refused(make_run, monkeypatch):
    real = engine_mod._ort_runner

    def broken(*args, **kwargs):
        runner = real(*args, **kwargs)
        call = runner.call
        runner.call = lambda x: [o * 1.01 for o in call(x)]  # a 1% error, like a bad export
        return runner

    monkeypatch.setattr(engine_mod, "_ort_runner", broken)
    model = _split(make_run("gru_features"))
    assert build_stream_engine(model, "auto") is None  # the stream keeps the encoder's path
    with pytest.raises(InferenceError, match="off fp32"):
        build_stream_engine(model, "onnx")


def test_int8_engine_is_close_to_fp32(make_run):
    model = _split(make_run("gru_features"))
    calibration = probe_frames(8, (60, 80), seed=3)
    engine = build_stream_engine(model, "int8", calibration=calibration)
    assert engine is not None and engine.kind == "int8"
    assert engine.check["cosine"] >= INT8_MIN_COSINE
    assert 0 < engine.check["max_rel_error"] < 0.2  # measurably not fp32, but close
    frames = probe_frames(6, (60, 80), seed=4)
    ref = torch.cat([model.encoder.encode(f[None]) for f in frames]).numpy()
    q = torch.cat([engine.encode(f[None]) for f in frames]).numpy()
    assert compare_outputs(ref, q)["cosine"] >= INT8_MIN_COSINE


def test_stream_engine_decisions_match_reference(make_run):
    run = make_run("gru_features")
    frames = probe_frames(12, (48, 64), seed=5)
    config = StreamConfig(frame_jump=1, window=4, smoothing=0.0)
    probs = {}
    for label, fast, engine in (("ref", False, "torch"), ("fast", True, "auto")):
        model = _split(run, fast=fast)
        got = []
        stats = run_stream(
            _Frames(frames),
            model,
            StreamConfig(**{**config.__dict__, "engine": engine}),
            on_decision=lambda d, got=got: got.append(d.probs),
        )
        assert stats.frames_encoded == len(frames)
        probs[label] = np.stack(got)
    np.testing.assert_allclose(probs["fast"], probs["ref"], atol=1e-5)


def test_export_is_cached(make_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    model = _split(make_run("gru_features"))
    build_stream_engine(model, "onnx")
    files = sorted((tmp_path / "cache").rglob("*.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    build_stream_engine(_split(make_run("gru_features", name="again")), "onnx")
    assert sorted((tmp_path / "cache").rglob("*.onnx")) == files
    assert files[0].stat().st_mtime_ns == stamp


def test_compare_outputs():
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert compare_outputs(ref, ref) == {"max_rel_error": 0.0, "cosine": 1.0, "top1_agreement": 1.0}
    flipped = compare_outputs(ref, ref[:, ::-1])
    assert flipped["top1_agreement"] == 0.0 and flipped["max_rel_error"] == 1.0
    with pytest.raises(InferenceError):
        compare_outputs(ref, ref[:1])


def test_export_failure_falls_back_unless_asked(make_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "empty-cache"))

    def fail(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(harkit.onnx, "export_onnx", fail)
    model = _split(make_run("gru_features"))
    assert build_stream_engine(model, "auto") is None
    with pytest.raises(InferenceError, match="export failed"):
        build_stream_engine(model, "onnx")
