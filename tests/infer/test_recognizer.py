"""Recognizer: same logits as the trained model, batched prediction, bad files, fast path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harkit.data.clips import load_clip
from harkit.data.transforms import ClipTransform
from harkit.infer import Recognizer
from harkit.infer.pipeline import split_model
from harkit.models.builder import pixel_preprocessing
from harkit.train.run import RunError, load_run
from tests.helpers.frames import pattern_frames
from tests.helpers.runs import CLASSES
from tests.helpers.tolerances import FEATURE_RTOL, PROB_ATOL


def _model_probs(run, video) -> np.ndarray:
    """Probabilities straight from build_model(recipe).forward on the sampled clip."""
    recipe, _, model = load_run(run)
    frames, _ = load_clip(video, recipe.input.sampling)
    size, mean, std = pixel_preprocessing(recipe)
    x = ClipTransform(recipe.input.transform, size, mean, std)(frames)
    with torch.no_grad():
        return torch.softmax(model(x[None]), dim=-1)[0].numpy()


@pytest.mark.parametrize("kind", ["small2d", "c3d", "bilstm_crnn"])
def test_end_to_end_prediction_equals_model_forward(kind, make_run, make_video):
    run, video = make_run(kind), make_video(num_frames=40)
    pred = Recognizer.from_run(run, fast=False).predict(video, top_k=3)
    np.testing.assert_allclose(pred.probs, _model_probs(run, video), atol=1e-5)
    assert pred.label in CLASSES and pred.label == pred.top_k[0][0]
    assert [p for _, p in pred.top_k] == sorted((p for _, p in pred.top_k), reverse=True)
    assert pred.format() == f"Class: {pred.label}, Confidence: {pred.confidence:.2f}"


@pytest.mark.parametrize(
    "kind", ["gru_features", "attention_two_layer", "segments_r3d", "wide_features"]
)
def test_features_prediction_equals_head_on_extracted_features(kind, make_run, make_video):
    # Inference must compute exactly the features training read from the feature store.
    from harkit.features.extractor import FeatureExtractor

    run, video = make_run(kind), make_video(num_frames=30)
    recipe, _, head = load_run(run)
    frames, _ = load_clip(video, recipe.input.sampling)
    extractor = FeatureExtractor(
        recipe.input.features, recipe.input.transform, device="cpu", precision="fp32"
    )
    feats = torch.cat(list(extractor(frames).values()), dim=-1)
    with torch.no_grad():
        expected = torch.softmax(head(feats[None]), dim=-1)[0].numpy()
    pred = Recognizer.from_run(run, fast=False).predict(video)
    np.testing.assert_allclose(pred.probs, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["gru_features", "small2d", "c3d", "segments_r3d"])
def test_fast_path_matches_fp32(kind, fast_precision, make_run, make_video):
    run, video = make_run(kind), make_video()
    fast, plain = Recognizer.from_run(run, fast=True), Recognizer.from_run(run, fast=False)
    assert (fast.precision, plain.precision) == (fast_precision, "fp32")
    frames, _ = plain.load(video)
    ref = plain.features(frames)
    error = ((fast.features(frames) - ref).norm() / ref.norm()).item()
    assert error < FEATURE_RTOL[fast_precision], error
    np.testing.assert_allclose(
        fast.predict(video).probs, plain.predict(video).probs, atol=PROB_ATOL[fast_precision]
    )


def test_short_video_uses_valid_steps_only(make_run, make_video):
    # 5 frames for an 8-frame uniform sampler: padding is masked, so the prediction equals the
    # head on the 5 real frames.
    run = make_run("gru_features")
    rec = Recognizer.from_run(run, fast=False)
    frames = pattern_frames(5)
    sampled, valid = rec.sample_array(frames)
    assert valid == 5 and len(sampled) == 8
    feats = rec.features(frames)
    expected = torch.softmax(rec.model.head_logits(feats[None]), -1)[0].numpy()
    np.testing.assert_allclose(rec.predict(frames).probs, expected, atol=1e-5)


def test_predict_many_reports_unreadable_files_and_keeps_order(make_run, make_video, tmp_path):
    run = make_run("small2d")
    good_a, good_b = make_video("a.mp4", seed=1), make_video("b.mp4", seed=2)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    rec = Recognizer.from_run(run)
    preds = list(rec.predict_many([good_a, broken, tmp_path / "missing.mp4", good_b], batch_size=3))
    assert [p.source for p in preds] == [
        str(good_a),
        str(broken),
        str(tmp_path / "missing.mp4"),
        str(good_b),
    ]
    assert [p.ok for p in preds] == [True, False, False, True]
    assert "error" in preds[1].to_dict() and preds[2].error
    # batching does not change results
    np.testing.assert_allclose(preds[3].probs, rec.predict(good_b).probs, atol=1e-5)


def test_split_model_streamability(make_run):
    for kind, streamable in [
        ("gru_features", True),
        ("small2d", True),
        ("segments_r3d", True),
        ("bilstm_crnn", False),
        ("c3d", False),
    ]:
        recipe, classes, net = load_run(make_run(kind))
        assert split_model(recipe, classes, net).streamable is streamable, kind


def test_missing_run_and_weights(make_run, tmp_path):
    with pytest.raises(RunError, match="not found"):
        Recognizer.from_run(tmp_path / "nope")
    run = make_run("small2d")
    (run / "model.safetensors").unlink()
    with pytest.raises(RunError, match=r"model\.safetensors is missing"):
        Recognizer.from_run(run)


def test_flow_options_are_checked_clearly(make_run, tmp_path):
    from harkit.config import ConfigError
    from harkit.infer import InferenceError

    # flow recipes load (issue 10): their flow settings come from the recipe by default
    rec = Recognizer.from_run(make_run("flow_stream"))
    assert rec.model.flow is not None and rec.model.flow.config.method == "tvl1"
    with pytest.raises(ConfigError, match=r"missing\.json: not a readable flow config"):
        Recognizer.from_run(make_run("flow_stream"), flow=tmp_path / "missing.json")
    with pytest.raises(InferenceError, match="reads no optical flow"):
        Recognizer.from_run(make_run("gru_features"), flow_method="farneback")
