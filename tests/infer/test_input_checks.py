"""A new user's findings on ``harkit predict`` and ``Recognizer``: window options that leave
gaps, output folders checked up front, ``--clips`` capped at the distinct windows, each
unreadable file reported once, and one-line errors for bad Python arguments."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from harkit.config import ConfigError
from harkit.infer import Recognizer
from harkit.infer.device import check_device
from harkit.infer.errors import InferenceError, WindowError


def _cli(*argv: str | Path) -> int:
    import harkit.cli.main as main

    try:
        return main.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code or 0)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- finding 1: a stride longer than the window ---------------------------------------------


def test_stride_longer_than_window_is_refused_on_the_cli(make_run, make_video, capsys):
    run, video = make_run("gru_features"), make_video(num_frames=40)
    code = _cli("predict", run, video, "--segments", "--window", "0.2", "--stride", "1")
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    line = _one_line(captured.err)
    assert "--stride 1 is longer than --window 0.2" in line and "gaps" in line
    # equal is fine: windows touch
    assert _cli("predict", run, video, "--segments", "--window", "0.4", "--stride", "0.4") == 0


def test_stride_longer_than_the_runs_window_is_refused(make_run, make_video, capsys):
    # small2d: window from the recipe's sampling (16 frames = 0.64 s at 25 fps)
    run, video = make_run("small2d"), make_video(num_frames=40)
    assert _cli("predict", run, video, "--segments", "--stride", "5") == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "stride 5 s is longer than the window 0.64 s" in line
    assert "cannot read" not in line and captured.out == ""


def test_stride_longer_than_window_from_python(make_run):
    rec = Recognizer.from_run(make_run("gru_features"))
    frames = np.zeros((40, 32, 32, 3), np.uint8)
    with pytest.raises(WindowError, match="stride 5 s is longer than the window 1 s"):
        rec.predict_segments(frames, window=1, stride=5)
    with pytest.raises(WindowError, match="longer than the window"):  # in frames
        rec.predict_segments(frames, window=0.2, stride=0.3, fps=10)


# -- finding 2: --segments-out checked first; the window length really used ---------------


@pytest.mark.parametrize("where", ["file", "proc"])
def test_segments_out_is_checked_before_any_video(where, make_run, make_video, capsys, tmp_path):
    if where == "proc":
        if not Path("/proc").is_dir():
            pytest.skip("no /proc")
        out = Path("/proc/nope")
    else:
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "sub"
    code = _cli(
        "predict",
        make_run("gru_features"),
        make_video(),
        "--segments",
        "--window",
        "0.4",
        "--segments-out",
        out,
    )
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # no window was computed or printed
    line = _one_line(captured.err)
    assert f"--segments-out {out}" in line and "expected a writable folder" in line


def test_table_shows_the_window_length_used(make_run, make_video, capsys):
    video = make_video(num_frames=40)  # 1.6 s
    assert _cli("predict", make_run("gru_features"), video, "--segments", "--window", "100") == 0
    out = capsys.readouterr().out
    assert "1 window of 1.60 s -> 1 segments" in out and "100.00" not in out
    assert "shorter than one window" in out


# -- finding 3: --clips N capped at the distinct windows ------------------------------------


def test_views_are_capped_at_the_distinct_windows(make_run, make_video, capsys):
    rec = Recognizer.from_run(make_run("gru_features"))
    spans = rec.view_spans(40, 1000, 25.0)  # windows of 20 frames: 21 start frames
    assert len(spans) == 21 and len(set(spans)) == 21
    assert rec.view_spans(40, 5, 25.0) == [(0, 20), (5, 25), (10, 30), (15, 35), (20, 40)]

    video = make_video(num_frames=40)
    pred = rec.predict_views(video, 1000, top_k=1)
    assert pred.note == "21 views instead of 1000: the video has only 21 distinct windows"
    assert rec.predict_views(video, 3).note == ""
    assert (
        _cli("predict", make_run("gru_features", name="r2"), video, "--clips", "1000", "--json")
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["note"] == pred.note
    assert "21 views instead of 1000" in captured.err


# -- finding 4: each unreadable file reported once ------------------------------------------


@pytest.mark.parametrize("clips", ["1", "2"])
def test_an_unreadable_file_is_reported_once(clips, make_run, make_video, capsys, caplog, tmp_path):
    caplog.set_level(logging.INFO)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 20)
    assert _cli("predict", make_run("gru_features"), bad, make_video(), "--clips", clips) == 0
    err = capsys.readouterr().err + caplog.text
    assert err.count("broken.mp4") == 1, err
    assert "harkit: cannot read" in err


# -- finding 5: Recognizer arguments ---------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu7", "cuda:99", "CPU", 3, None])
def test_bad_devices_are_refused_before_loading(device, make_run):
    with pytest.raises(InferenceError, match=r"^device: expected .*got ") as info:
        Recognizer.from_run(make_run("gru_features"), device=device)
    assert "\n" not in str(info.value)


def test_cuda_without_a_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        assert check_device("cuda") == "cuda"
        with pytest.raises(InferenceError, match="a device this machine has"):
            check_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(InferenceError, match=r"no CUDA device; use cpu\), got 'cuda'"):
            check_device("cuda")
    assert check_device("cpu") == "cpu"


def test_one_path_is_one_video(make_run, make_video):
    rec = Recognizer.from_run(make_run("gru_features"))
    video = make_video()
    for one in (str(video), video):
        preds = list(rec.predict_many(one))
        assert len(preds) == 1 and preds[0].ok and preds[0].source == str(video)
    for bad in (5, [1], np.zeros((4, 8, 8, 3), np.uint8)):
        with pytest.raises(ConfigError, match="argument 'videos': expected video paths"):
            rec.predict_many(bad)  # refused at the call, not on iteration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": 5}, "'path': expected a run folder path (str or Path), got 5"),
        ({"path": "run", "engine": "tf"}, "'engine': input should be 'torch' or 'onnx', got 'tf'"),
        ({"path": "run", "fast": 1}, "'fast': input should be a valid boolean, got 1"),
        ({"path": "run", "onnx_dir": 3}, "'onnx_dir': expected a path (str or Path), got 3"),
    ],
)
def test_bad_from_run_arguments_are_refused_before_loading(kwargs, message):
    with pytest.raises(ConfigError) as info:
        Recognizer.from_run(**kwargs)
    assert str(info.value) == f"Recognizer.from_run: argument {message}"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, v: r.predict_many([v], batch_size=0), "'batch_size': .* equal to 1, got 0$"),
        (lambda r, v: r.predict_many([v], batch_size=2.5), "'batch_size': .* valid integer"),
        (lambda r, v: r.predict_many([v], batch_size=True), "'batch_size': .* integer, got True"),
        (lambda r, v: r.predict_many([v], views=0), "'views': .* equal to 1, got 0$"),
        (lambda r, v: r.predict(v, top_k=0), "'top_k': .* equal to 1, got 0$"),
        (lambda r, v: r.predict(v, top_k=-1), "'top_k': .* equal to 1, got -1$"),
        (lambda r, v: r.predict(5), "'video': expected a video file or frame folder path"),
        (lambda r, v: r.predict([v]), "'video': expected a video file or frame folder path"),
        (lambda r, v: r.predict_segments(v, window=float("nan")), "'window': .* finite number"),
        (lambda r, v: r.predict_segments(v, window=float("inf")), "'window': .* finite number"),
        (lambda r, v: r.predict_segments(v, window="2"), "'window': .* valid number, got '2'$"),
        (lambda r, v: r.predict_segments(v, window=True), "'window': .* valid number, got True"),
        (lambda r, v: r.predict_segments(v, window=1, stride=0), "'stride': .* greater than 0"),
        (lambda r, v: r.predict_segments(v, window=1, top_k=0), "'top_k': .* equal to 1"),
        (lambda r, v: r.predict_views(v, "3"), "'views': .* valid integer, got '3'$"),
        (lambda r, v: r.predict_views(v, 0), "'views': .* equal to 1, got 0$"),
        (lambda r, v: r.predict_views(v, 2, top_k=0), "'top_k': .* equal to 1, got 0$"),
    ],
)
def test_bad_arguments_are_one_line_errors(call, message, make_run, make_video):
    rec = Recognizer.from_run(make_run("gru_features"))
    with pytest.raises(ConfigError, match=f"^Recognizer[.]predict.*: argument {message}") as info:
        call(rec, make_video())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fps", [-5, 0, float("nan"), "25"])
def test_bad_fps_for_arrays_is_refused(fps, make_run):
    rec = Recognizer.from_run(make_run("gru_features"))
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    wrong = f"argument 'fps': input should be (greater than 0|a finite number|a valid number), got {fps!r}$"
    with pytest.raises(ConfigError, match=f"^Recognizer[.]predict_segments: {wrong}"):
        rec.predict_segments(frames, window=0.4, fps=fps)
    with pytest.raises(ConfigError, match=f"^Recognizer[.]predict_views: {wrong}"):
        rec.predict_views(frames, 2, fps=fps)
