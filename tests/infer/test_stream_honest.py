"""Issue 19 item 6: a stream is honest from its first frame and ends on predict's answer.

* no label before the stream has sampled a training clip's worth of steps (the window):
  warm-up decisions carry ``label`` None and say how far they are (``steps`` / of
  ``warmup_steps``), in the Python API, the JSON lines and the printed lines;
* the end of a file gives a final decision; on a file sampled as predict samples it that is
  predict's answer, also for segment (3D) runs whose last segment is short and two-stream
  (RGB + flow) runs whose last flow segment is one pair short;
* a frame jump other than the run's says how much slower or faster the model sees motion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from harkit.infer import Recognizer
from harkit.infer.sources import FileSource, Frame, FrameSource
from harkit.infer.stream import StreamRecognizer, run_stream
from harkit.infer.stream_plan import StreamConfig, plan_stream
from harkit.train.run_info import RunInfo
from tests.helpers.frames import pattern_frames
from tests.helpers.runs import CLASSES, TWO_STREAM_FRAMES, write_run

# seed 001's two-stream I3D, small: random-init I3D on 32 px, segments of 8 frames, farneback
TWO_STREAM_SEGMENTS = {
    "name": "test-i3d-twostream",
    "mode": "features",
    "input": {
        "sampling": {"strategy": "segments", "segment_length": 8},
        "transform": {"resize": 32, "crop_size": 32},
        "features": [
            {"backbone": "i3d", "weights": "none", "stream": "rgb"},
            {"backbone": "i3d_flow", "weights": "none", "stream": "flow"},
        ],
        "flow_method": "farneback",
    },
    "head": {"type": "two_stream", "hidden": 8, "num_layers": 1},
}


class _Live(FrameSource):
    live = False  # not paced: no clock needed

    def __init__(self, count: int, fps: float = 25.0) -> None:
        self.name, self.fps, self.count = "live", fps, count

    def frames(self) -> Iterator[Frame]:
        for i, image in enumerate(pattern_frames(self.count)):
            yield Frame(i, i / self.fps, image)


def _stream(run, video, config=None):
    """(predict's prediction, every decision, stats) on one file, both fp32."""
    rec = Recognizer.from_run(run, fast=False)
    decisions = []
    stats = run_stream(FileSource(video), rec.model, config, on_decision=decisions.append)
    return rec.predict(video), decisions, stats


def _assert_final_is_predicts(pred, decisions, stats):
    last = decisions[-1]
    assert last.final and not last.warming_up
    assert (last.label, last.raw_label, stats.final_label) == (pred.label,) * 3
    assert last.confidence == pytest.approx(pred.confidence, abs=1e-5)
    np.testing.assert_allclose(last.probs, pred.probs, atol=1e-5)


# -- warm-up --------------------------------------------------------------------------------


def test_no_label_until_the_window_holds_a_training_clip(make_run):
    model = Recognizer.from_run(make_run("gru_features"), fast=False).model  # uniform 8
    info = RunInfo.model_validate({"train_clips": {"frames": 40, "fps": 25.0}})  # frame jump 5
    plan = plan_stream(model, StreamConfig(), _Live(60), info)
    rec = StreamRecognizer(model, StreamConfig(), plan)
    decisions = [d for f in _Live(60).frames() if (d := rec.push(f)) is not None]
    assert [d.frame for d in decisions] == list(range(0, 60, 5))  # every sampled step
    warm, decided = decisions[:7], decisions[7:]
    for k, d in enumerate(warm, start=1):
        assert d.warming_up and (d.steps, d.warmup_steps) == (k, 8)
        assert (d.label, d.confidence, d.raw_label, d.raw_confidence) == (None,) * 4
        assert d.probs is not None and not d.final  # the head's output, kept for checks
        row = d.to_dict()
        assert row["label"] is None and row["warming_up"] and row["steps"] == k
    assert all(not d.warming_up and d.label in CLASSES for d in decided)
    # The first label is that step's own answer: warm-up probabilities are not smoothed in.
    first = decided[0]
    assert first.steps == 8 and first.label == CLASSES[int(first.probs.argmax())]
    assert first.confidence == pytest.approx(float(first.probs.max()))
    # --warmup 0: a label from the first step (the old behaviour, asked for)
    rec = StreamRecognizer(model, StreamConfig(warmup=0), plan)
    first = rec.push(next(_Live(1).frames()))
    assert first is not None and first.steps == 1 and first.label in CLASSES


def test_cli_marks_warm_up_in_json_and_text(cli, make_run, make_video, capsys, monkeypatch):
    monkeypatch.setenv("HARKIT_PRECISION", "fp32")
    run, video = make_run("gru_features", seed=3), make_video(num_frames=37, seed=7)
    assert cli("predict", run, video, "--json") == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli("stream", run, "--source", video, "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    decisions, summary = rows[:-1], rows[-1]
    # the file is one clip, sampled as predict samples it: 8 steps, a label only at the end
    assert len(decisions) == 8 and summary["window"] == 8
    for k, row in enumerate(decisions[:-1], start=1):
        assert row["type"] == "decision" and row["warming_up"] and not row["final"]
        assert (row["label"], row["confidence"], row["raw_label"]) == (None, None, None)
        assert (row["steps"], row["warmup_steps"]) == (k, 8)
    final = decisions[-1]
    assert final["final"] and not final["warming_up"] and final["label"] == predicted["label"]
    assert summary["warmup_decisions"] == 7 and summary["final_label"] == predicted["label"]

    assert cli("stream", run, "--source", video) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("frame      0  warming up (1/8 steps)")
    assert len(lines) == 2 and lines[1].split()[-2] == predicted["label"]


def test_a_source_that_ends_within_the_warm_up_still_gets_its_answer(make_run):
    model = Recognizer.from_run(make_run("gru_features"), fast=False).model
    decisions = []
    stats = run_stream(
        _Live(5),
        model,
        StreamConfig(frame_jump=1),
        run_info=RunInfo(),
        on_decision=decisions.append,
    )
    # 5 warm-up steps, then the end of the source: one more row, final, on those 5 steps
    assert [d.warming_up for d in decisions] == [True] * 5 + [False]
    last = decisions[-1]
    assert last.final and (last.frame, last.steps) == (4, 5)
    np.testing.assert_allclose(last.probs, decisions[-2].probs)
    assert stats.final_label == last.label in CLASSES and stats.warmup_decisions == 5


# -- the end of a file is predict's answer --------------------------------------------------


@pytest.mark.parametrize("frames", [22, 30])
def test_segment_run_ends_on_predicts_answer(make_run, make_video, frames):
    # segments of 4, at most 6: 22 frames end on a 2-frame segment (predict pads it with
    # its last frame); of 30 frames predict sees the first 24
    run, video = make_run("segments_r3d", seed=1), make_video(num_frames=frames, seed=2)
    pred, decisions, stats = _stream(run, video, StreamConfig(smoothing=0.0))
    assert len(decisions) == 6 and stats.window == 6 and "as predict samples it" in stats.sampling
    _assert_final_is_predicts(pred, decisions, stats)


@pytest.mark.slow
@pytest.mark.parametrize("frames", [40, 45])
def test_two_stream_segment_run_ends_on_predicts_answer(tmp_path, frames):
    # 40 frames: 5 RGB segments, 39 flow pairs (the 5th flow segment one pair short);
    # 45: the 6th segment of both streams is short
    from harkit.synth import write_video

    run = write_run(tmp_path / "run", TWO_STREAM_SEGMENTS, seed=1)
    video = tmp_path / "clip.mp4"
    write_video(video, pattern_frames(frames), fps=25)
    pred, decisions, stats = _stream(run, video)
    assert len(decisions) == -(-frames // 8) and decisions[-1].frame == frames - 1
    _assert_final_is_predicts(pred, decisions, stats)


@pytest.mark.slow
def test_cli_two_stream_stream_equals_predict(cli, capsys, monkeypatch, tmp_path):
    from harkit.synth import write_video

    monkeypatch.setenv("HARKIT_PRECISION", "fp32")
    run = write_run(tmp_path / "run", TWO_STREAM_SEGMENTS, seed=2)
    video = tmp_path / "clip.mp4"
    write_video(video, pattern_frames(40, seed=3), fps=25)
    assert cli("predict", run, video, "--json") == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli("stream", run, "--source", video, "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    final, summary = rows[-2], rows[-1]
    assert final["final"] and final["label"] == summary["final_label"] == predicted["label"]
    assert final["confidence"] == pytest.approx(predicted["confidence"], abs=1e-4)


def test_frame_two_stream_run_ends_on_predicts_answer(tmp_path):
    from harkit.synth import write_video

    run = write_run(tmp_path / "run", TWO_STREAM_FRAMES, seed=1)
    video = tmp_path / "clip.mp4"
    write_video(video, pattern_frames(40, 32, 40), fps=25)
    pred, decisions, stats = _stream(run, video)
    assert len(decisions) == 6 and [d.warming_up for d in decisions] == [True] * 5 + [False]
    _assert_final_is_predicts(pred, decisions, stats)


def test_a_file_not_sampled_as_predict_still_ends_on_a_final_answer(make_run, make_video):
    # every 8th of 40 frames: 5 steps, fewer than the window of 8; the file's end decides
    model = Recognizer.from_run(make_run("gru_features"), fast=False).model
    decisions = []
    stats = run_stream(
        FileSource(make_video(num_frames=40)),
        model,
        StreamConfig(frame_jump=8),
        on_decision=decisions.append,
    )
    assert [d.warming_up for d in decisions] == [True] * 5 + [False]
    last = decisions[-1]
    assert last.final and last.frame == 39 and last.label == CLASSES[int(last.probs.argmax())]
    assert stats.final_label == last.label
    # a stream stopped early (--max-frames) is no end of file: no final answer
    cut = run_stream(
        FileSource(make_video(num_frames=40)), model, StreamConfig(frame_jump=8, max_frames=30)
    )
    assert cut.final_label == "" and cut.warmup_decisions == cut.decisions == 4


# -- frame jump -----------------------------------------------------------------------------


def test_another_frame_jump_says_how_the_motion_speed_changes(make_run, make_video, cli, capsys):
    model = Recognizer.from_run(make_run("gru_features"), fast=False).model
    video = FileSource(make_video(num_frames=40))  # predict's 8 of 40: every ~5th frame
    slow = plan_stream(model, StreamConfig(frame_jump=1), video, RunInfo())
    assert "motion per step 5x slower than training's" in slow.reason
    fast = plan_stream(model, StreamConfig(frame_jump=10), video, RunInfo())
    assert "motion per step 2x faster than training's" in fast.reason
    assert "slower" not in plan_stream(model, StreamConfig(frame_jump=5), video, RunInfo()).reason
    with pytest.raises(SystemExit):
        cli("stream", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "round(F / N)" in text and "motion" in text and "--warmup" in text
