"""Issue 9: a stream's defaults come from how the run was trained, and on a file its final
decision is predict's (same frames, same probabilities in fp32)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from harkit.infer import Recognizer
from harkit.infer.sources import FileSource, Frame, FrameSource
from harkit.infer.stream import run_stream
from harkit.infer.stream_plan import StreamConfig, plan_stream
from harkit.train.run_info import RunInfo


def _final(run, video, config=None):
    """(predict's prediction, the stream's last decision, its stats) on one file, fp32."""
    rec = Recognizer.from_run(run, fast=False)  # the fp32 reference for both
    decisions = []
    stats = run_stream(FileSource(video), rec.model, config, on_decision=decisions.append)
    return rec.predict(video), decisions[-1], stats


# c3d: clip encoder, windowed; gru_features: per-frame CNN + GRU, incremental. Held-out
# clips longer and shorter (predict pads: the clip encoder sees the last frame repeated)
# than the N frames trained on.
@pytest.mark.parametrize(
    "kind, frames, mode",
    [
        ("c3d", 45, "windowed"),
        ("c3d", 11, "windowed"),
        ("gru_features", 37, "incremental"),
        ("wide_features", 29, "incremental"),
        ("grid_features", 29, "incremental"),
    ],
)
def test_stream_on_a_file_ends_on_predicts_answer(make_run, make_video, kind, frames, mode):
    run = make_run(kind, seed=3)
    video = make_video(num_frames=frames, seed=7)
    pred, last, stats = _final(run, video)
    assert stats.mode == mode and last.final
    assert "from the file" in stats.sampling and f"its {frames} frames" in stats.sampling
    assert last.raw_label == pred.label == stats.final_label
    # the final line itself shows predict's answer, not the smoothed label lagging behind
    assert (last.label, last.confidence) == (pred.label, pytest.approx(pred.confidence, abs=1e-5))
    np.testing.assert_allclose(last.probs, pred.probs, atol=1e-5)
    # The check has teeth: consecutive frames (the old default) give other probabilities.
    _, consecutive, _ = _final(run, video, StreamConfig(frame_jump=1))
    assert not np.allclose(consecutive.probs, pred.probs, atol=1e-5)


def test_cli_stream_and_predict_agree(cli, make_run, make_video, capsys, monkeypatch):
    monkeypatch.setenv("HARKIT_PRECISION", "fp32")
    run, video = make_run("c3d", seed=1), make_video(num_frames=50, seed=2)
    assert cli("predict", run, video, "--json") == 0
    out = capsys.readouterr().out.strip().splitlines()
    predicted = json.loads(out[-1])
    assert cli("stream", run, "--source", video, "--json") == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    final, summary = rows[-2], rows[-1]
    assert final["final"] and final["raw_label"] == final["label"] == predicted["label"]
    assert final["raw_confidence"] == pytest.approx(predicted["confidence"], abs=1e-4)
    assert summary["final_label"] == predicted["label"]
    assert summary["window"] == 16 and summary["frame_jump"] == 3  # round(50 / 16)
    said = "uniform 16 frames over its 50 frames, as predict samples it"
    assert said in summary["sampling"] and said in captured.err
    assert f"final decision {predicted['label']}" in captured.err


class _Live(FrameSource):
    live = False  # not paced: the test needs no clock

    def __init__(self, fps: float = 25.0, count: int = 0) -> None:
        self.name, self.fps, self.count = "live", fps, count

    def frames(self) -> Iterator[Frame]:
        from tests.helpers.frames import pattern_frames

        for i, image in enumerate(pattern_frames(self.count)):
            yield Frame(i, i / self.fps, image)


def _model(make_run, kind="gru_features"):
    return Recognizer.from_run(make_run(kind)).model


def test_plan_spreads_the_window_over_a_recorded_training_clip(make_run):
    model = _model(make_run)  # uniform 8 frames per clip
    info = RunInfo.model_validate({"train_clips": {"frames": 120, "fps": 25.0}})
    plan = plan_stream(model, StreamConfig(), _Live(25.0), info)
    assert (plan.frame_jump, plan.window, plan.targets) == (15, 8, None)
    assert plan.reason == (
        "from the run: uniform 8 frames over ~120-frame clips (recorded in run.json)"
    )
    # Time is what training saw: a 50 fps source spans the same seconds with twice the frames.
    assert plan_stream(model, StreamConfig(), _Live(50.0), info).frame_jump == 30


def test_a_file_of_one_clip_is_sampled_as_predict_a_long_one_by_the_run(make_run, make_video):
    model = _model(make_run)
    info = RunInfo.model_validate({"train_clips": {"frames": 20, "fps": 25.0}})  # <= 40: one clip
    one = plan_stream(model, StreamConfig(), FileSource(make_video(num_frames=40)), info)
    assert one.targets == (0, 6, 11, 17, 22, 28, 33, 39)  # predict's uniform 8 of 40
    assert "as predict samples it (one clip: training clips are ~20 frames)" in one.reason
    long = plan_stream(model, StreamConfig(), FileSource(make_video("long.mp4", 41)), info)
    assert (long.targets, long.frame_jump) == (None, 2)  # round(20 / 8)


def test_clip_length_from_the_recorded_dataset(make_run, make_video, tmp_path):
    from harkit.infer.training_clip import training_clip_length

    root = tmp_path / "data"
    for c, label in enumerate(("jump", "sit")):
        for v in range(5):  # five groups: the smallest group-aware 20% test split
            (root / label).mkdir(parents=True, exist_ok=True)
            video = make_video(f"{label}{v}.mp4", num_frames=30 + 10 * c, fps=10)
            video.rename(root / label / f"v_{label}_g{v:02d}_c01.mp4")
    recorded = RunInfo.model_validate({"dataset_config": {"root": str(root)}})
    clip = training_clip_length(recorded)
    assert clip is not None and clip.fps == 10.0 and 30 <= clip.frames <= 50
    assert clip.origin.startswith("median of ") and clip.origin.endswith(" training videos")
    gone = RunInfo.model_validate({"dataset_config": {"root": str(tmp_path / "gone")}})
    assert training_clip_length(gone) is None
    model = _model(make_run)
    plan = plan_stream(model, StreamConfig(), _Live(20.0), recorded)
    assert plan.frame_jump == round(clip.frames * 2 / 8)  # 20 fps source, 10 fps training


def test_plan_overrides_and_live_fallback(make_run, make_video):
    model = _model(make_run)
    live = plan_stream(model, StreamConfig(), _Live(), RunInfo())
    assert live.frame_jump == 1 and "records no training clip length" in live.reason
    given = plan_stream(model, StreamConfig(frame_jump=3, window=5), FileSource(make_video()))
    assert (given.frame_jump, given.window, given.targets) == (3, 5, None)
    assert given.reason.startswith("--window 5 given; --frame-jump 3 given")
    stride = plan_stream(_model(make_run, "bilstm_crnn"), StreamConfig(), _Live(), RunInfo())
    assert (stride.frame_jump, stride.window) == (4, 8)
    assert stride.reason == "from the run: every 4th frame (stride sampling)"


def test_recorded_clip_length_drives_a_live_stream(make_run):
    model = _model(make_run)
    info = RunInfo.model_validate({"train_clips": {"frames": 40, "fps": 25.0}})  # jump 5
    stats = run_stream(_Live(count=42), model, StreamConfig(), run_info=info)
    assert stats.frame_jump == 5 and stats.frames_encoded == 9  # frames 0, 5, ..., 40
    # one per step (the first 7 warming up: window 8) and the end of the source's
    assert (stats.decisions, stats.warmup_decisions) == (10, 7)
    assert stats.sampling.startswith("from the run")
