"""Issue 13 part 2: long videos. ``predict --segments`` slides the run's clip window over a
video (per-window labels, merged segments, JSON + CSV); ``predict --clips N`` averages N
views."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harkit.data.video import read_frames
from harkit.infer import Recognizer
from harkit.synth import write_video

pytestmark = pytest.mark.slow

FPS = 12
CLIP = 24  # training clips: 2 s


def _cli(*argv: str | Path) -> int:
    import harkit.cli.main as main

    try:
        return main.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def _colour_frames(colour: str, n: int, seed: int) -> np.ndarray:
    """A red or blue scene with noise and a moving bar (so frames differ)."""
    rng = np.random.default_rng(seed)
    base = np.array([200, 30, 30] if colour == "Red" else [30, 30, 200], dtype=np.int16)
    frames = base + rng.integers(-25, 26, (n, 32, 32, 3))
    for t in range(n):
        x = (2 * t + seed) % 26
        frames[t, :, x : x + 6] = 128
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A run trained to tell red scenes from blue ones, and a video that turns red -> blue."""
    root = tmp_path_factory.mktemp("long")
    rows = ["path,label,split,group"]
    for label in ("Red", "Blue"):
        for k in range(5):
            path = root / "data" / label / f"{label}_{k}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, _colour_frames(label, CLIP, k), fps=FPS)
            rows.append(f"{label}/{path.name},{label},{'test' if k == 4 else 'train'},g{k}")
    manifest = root / "data" / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    run = root / "run"
    assert (
        _cli(
            "train",
            "--recipe",
            "synthetic-gru",
            "--dataset",
            manifest,
            "--run",
            run,
            "--store",
            root / "store",
            "--accelerator",
            "cpu",
            "--no-progress",
            "--set",
            "head.center=false",
            "--set",
            "head.hidden=16",
            "--set",
            "head.dropout=0",
            "--set",
            "optim.epochs=15",
            "--set",
            "optim.val_fraction=0",
            "--set",
            "optim.batch_size=4",
            "--set",
            "input.sampling.num_frames=8",
        )
        == 0
    )
    long = root / "long.mp4"  # 4 s red, then 4 s blue
    write_video(
        long, np.concatenate([_colour_frames("Red", 48, 7), _colour_frames("Blue", 48, 8)]), fps=FPS
    )
    return SimpleNamespace(root=root, run=run, long=long)


def test_segments_find_the_change_point(colours, capsys):
    out = colours.root / "segments"
    assert _cli("predict", colours.run, colours.long, "--segments", "--segments-out", out) == 0
    table = capsys.readouterr().out
    assert "7 windows of 2.00 s every 1.00 s -> 2 segments" in table

    result = json.loads((out / "long.mp4.segments.json").read_text())
    assert result["window_frames"] == CLIP and result["stride_frames"] == CLIP // 2
    assert "median of 8 training videos" in result["window_origin"]
    assert [w["start_s"] for w in result["windows"]] == [0, 1, 2, 3, 4, 5, 6]
    assert all(w["end_s"] - w["start_s"] == 2 for w in result["windows"])
    assert [w["label"] for w in result["windows"][:3]] == ["Red"] * 3  # all red
    assert [w["label"] for w in result["windows"][-3:]] == ["Blue"] * 3  # all blue
    (red, blue) = result["segments"]
    assert red[2] == "Red" and blue[2] == "Blue"
    assert red[0] == 0 and blue[1] == 8 and red[1] == blue[0]
    # the change (4 s) lies between the centres of the two windows that disagree
    assert abs(red[1] - 4.0) <= 0.5
    # a segment's confidence is the mean of its windows'
    n_red = sum(w["label"] == "Red" for w in result["windows"])
    confs = [w["confidence"] for w in result["windows"]]
    assert red[3] == pytest.approx(np.mean(confs[:n_red]), abs=1e-5)
    assert blue[3] == pytest.approx(np.mean(confs[n_red:]), abs=1e-5)

    with open(out / "long.mp4.segments.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["start_s", "end_s", "label", "confidence"]
    assert [[float(r[0]), float(r[1]), r[2], float(r[3])] for r in rows[1:]] == result["segments"]
    with open(out / "long.mp4.windows.csv", newline="") as handle:
        windows = list(csv.DictReader(handle))
    assert [w["label"] for w in windows] == [w["label"] for w in result["windows"]]
    assert windows[0]["top_k"].startswith("Red:")


def test_segments_from_python_with_explicit_window_and_stride(colours):
    rec = Recognizer.from_run(colours.run)
    result = rec.predict_segments(colours.long, window=1.0, stride=1.0, top_k=1)
    assert result.window == 12 and result.stride == 12 and len(result.windows) == 8
    assert [s.label for s in result.segments] == ["Red", "Blue"]
    assert result.segments[0].end_s == 4.0  # windows touching at the change: exact
    assert all(len(w.top_k) == 1 for w in result.windows)


def test_clips_average_single_clip_predictions(colours, capsys):
    rec = Recognizer.from_run(colours.run)
    frames = read_frames(colours.long, np.arange(96))
    spans = rec.view_spans(96, 3, FPS)
    assert spans == [(0, 24), (36, 60), (72, 96)]  # one training clip each, evenly spread
    singles = [rec.predict(frames[a:b]).probs for a, b in spans]
    views = rec.predict_views(colours.long, 3)
    np.testing.assert_allclose(views.probs, np.mean(singles, axis=0), atol=1e-6)
    assert views.label == rec.classes[int(np.argmax(views.probs))]

    assert _cli("predict", colours.run, colours.long, "--clips", "3", "--json") == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["confidence"] == pytest.approx(float(views.confidence), abs=1e-6)
    # --clips 1 is the plain prediction, exactly
    assert _cli("predict", colours.run, colours.long, "--clips", "1", "--json") == 0
    one = capsys.readouterr().out
    assert _cli("predict", colours.run, colours.long, "--json") == 0
    assert capsys.readouterr().out == one


def test_a_video_shorter_than_one_window_is_one_window(colours, capsys):
    short = colours.root / "short.mp4"
    write_video(short, _colour_frames("Blue", 10, 3), fps=FPS)
    assert _cli("predict", colours.run, short, "--segments", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["windows"]) == 1 and result["windows"][0]["end_frame"] == 10
    assert "shorter than one window (10 < 24 frames)" in result["note"]
    assert result["segments"] == [
        [0.0, round(10 / FPS, 3), "Blue", result["windows"][0]["confidence"]]
    ]


def test_a_bad_video_is_reported_and_the_others_go_on(colours, capsys, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    assert _cli("predict", colours.run, bad, colours.long, "--segments") == 0
    captured = capsys.readouterr()
    assert "cannot read" in captured.err and "broken.mp4" in captured.err
    assert "1 of 2 videos could not be read" in captured.err
    assert "-> 2 segments" in captured.out
    assert _cli("predict", colours.run, bad, "--clips", "2") == 1  # none could be read


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clips", "0"], "--clips: expected an integer from 1 to 1000, got '0'"),
        (["--clips", "5000"], "--clips: expected an integer from 1 to 1000, got '5000'"),
        (["--segments", "--stride", "0"], "--stride: expected a number > 0"),
        (["--segments", "--stride", "-1"], "--stride: expected a number > 0"),
        (["--segments", "--window", "abc"], "--window: expected a number > 0"),
        (["--segments", "--clips", "2"], "--clips and --segments exclude each other"),
        (["--window", "2"], "--window needs --segments"),
        (["--segments-out", "x"], "--segments-out needs --segments"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(argv, message, make_run, make_video, capsys):
    code = _cli("predict", make_run("gru_features"), make_video(), *argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_segments_need_a_window_when_the_run_has_no_clip_length(make_run, make_video, capsys):
    run, video = make_run("gru_features"), make_video(num_frames=40)
    assert _cli("predict", run, video, "--segments") == 2
    err = capsys.readouterr().err
    assert "records no training clip length" in err and "--window SECONDS" in err
    assert len(err.strip().splitlines()) == 1
    assert _cli("predict", run, video, "--segments", "--window", "0.6", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["window_frames"] == 15 and result["stride_frames"] == 7
    assert [w["start_frame"] for w in result["windows"]] == [0, 7, 14, 21, 25]
    assert result["windows"][-1]["end_frame"] == 40  # the last window ends at the last frame


def test_views_of_a_flowless_run_on_arrays_are_deterministic(make_run):
    rec = Recognizer.from_run(make_run("gru_features"))
    frames = np.random.default_rng(0).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    a = rec.predict_views(frames, 4)
    spans = rec.view_spans(30, 4, 25.0)
    assert spans == [(0, 15), (5, 20), (10, 25), (15, 30)]  # no clip length: half the video
    want = torch.softmax(
        torch.stack([rec.clip_logits(rec.array_clip(frames[s:e])) for s, e in spans]), -1
    ).mean(0)
    np.testing.assert_allclose(a.probs, want.numpy(), atol=1e-6)
