"""Streaming: incremental decoding, smoothing, real-time dropping, sources and reconnects."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from harkit.data.video import probe, read_frames
from harkit.heads import DualLayerAttentionHead, RecurrentHead, TwoStreamHead
from harkit.infer.decoder import IncrementalDecoder
from harkit.infer.pipeline import split_model
from harkit.infer.smoothing import LabelSmoother
from harkit.infer.sources import Frame, FrameSource
from harkit.infer.stream import run_stream
from harkit.infer.stream_plan import StreamConfig
from harkit.train.run import load_run
from tests.helpers.frames import pattern_frames
from tests.helpers.runs import CLASSES


def _json_lines(text: str) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    decisions = [r for r in rows if r["type"] == "decision"]
    summaries = [r for r in rows if r["type"] == "summary"]
    assert len(summaries) == 1 and rows[-1]["type"] == "summary"
    return decisions, summaries[0]


# -- incremental decoding -------------------------------------------------------------------

HEADS = {
    "gru_last": lambda: RecurrentHead(12, 4, hidden=[10, 8], cell="gru"),
    "lstm_attention": lambda: RecurrentHead(12, 4, hidden=8, cell="lstm", pooling="attention"),
    "gru_mean_fc": lambda: RecurrentHead(12, 4, hidden=8, pooling="mean", fc=[6]),
    "dual_layer": lambda: DualLayerAttentionHead([5, 7], 4, hidden=6),
    "two_stream": lambda: TwoStreamHead(4, input_dims=[5, 7], hidden=6),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_incremental_step_equals_full_forward_on_prefix(name):
    torch.manual_seed(0)
    head = HEADS[name]().eval()
    x = torch.randn(1, 9, 12)
    decoder = IncrementalDecoder(head, window=4, policy="none")
    with torch.no_grad():
        for t in range(9):
            step = decoder.push(x[:, t])
            np.testing.assert_allclose(step, head(x[:, : t + 1])[0], atol=1e-5)


def test_staggered_reset_keeps_between_half_and_full_window():
    torch.manual_seed(0)
    head = RecurrentHead(12, 4, hidden=8).eval()
    x = torch.randn(1, 8, 12)
    decoder = IncrementalDecoder(head, window=4, policy="staggered")
    # state A covers steps 0.., reset after 4; state B starts at step 2, reset after 4 steps
    expected_start = [0, 0, 0, 0, 2, 2, 4, 4]
    with torch.no_grad():
        for t in range(8):
            got = decoder.push(x[:, t])
            want = head(x[:, expected_start[t] : t + 1])[0]
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"step {t}")


def _staggered_start(t: int, window: int) -> int:
    """First step the staggered decoder's answer at step ``t`` has seen."""
    start_a = t // window * window
    half = window // 2
    if window == 1 or t < half:
        return start_a
    return min(start_a, half + (t - half) // window * window)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_staggered_decoder_equals_forward_on_its_window(name, window):
    # the two staggered states run as one batch-2 step: each answer must still equal the
    # head's forward over exactly the steps its state has seen
    torch.manual_seed(0)
    head = HEADS[name]().eval()
    x = torch.randn(1, 3 * window + 5, 12)
    decoder = IncrementalDecoder(head, window=window, policy="staggered")
    with torch.no_grad():
        for t in range(x.shape[1]):
            got = decoder.push(x[:, t])
            want = head(x[:, _staggered_start(t, window) : t + 1])[0]
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"step {t}")


def test_smoother_hysteresis_does_not_flicker():
    smoother = LabelSmoother(smoothing=0.0, margin=0.1, patience=3)
    a, b = np.array([0.6, 0.4]), np.array([0.3, 0.7])
    shown = [smoother.update(p)[0] for p in [a, b, a, b, b, a]]
    assert shown == [0] * 6  # evidence that does not win 3 times in a row never switches
    shown = [smoother.update(b)[0] for _ in range(3)]
    assert shown == [0, 0, 1]
    # a new label within the margin does not switch either
    close = np.array([0.52, 0.48])
    assert [smoother.update(close)[0] for _ in range(5)] == [1] * 5


# -- the stream loop ------------------------------------------------------------------------


def test_stream_file_at_native_rate_cli(cli, make_run, make_video, capsys, tmp_path):
    run, video = make_run("small2d"), make_video(num_frames=30)
    out = tmp_path / "annotated.mp4"
    code = cli("stream", run, "--source", video, "--json", "--realtime", "--output", out)
    assert code == 0
    decisions, summary = _json_lines(capsys.readouterr().out)
    assert summary["mode"] == "incremental" and summary["frames_read"] == 30
    assert summary["frames_encoded"] + summary["frames_dropped"] == 30
    assert summary["end_reason"] == "end of stream"
    # one per sampled frame, and the end of the file's final answer
    assert len(decisions) == summary["decisions"] == summary["frames_encoded"] + 1 > 1
    assert decisions[-1]["final"] and not any(d["final"] for d in decisions[:-1])
    for d in decisions:
        if d["warming_up"]:  # less than a window (16 frames) seen: no label yet
            assert d["label"] is d["confidence"] is None and d["steps"] < 16
        else:
            assert d["label"] in CLASSES and 0.0 <= d["confidence"] <= 1.0
        assert d["latency_ms"] >= 0
    assert [d["frame"] for d in decisions] == sorted(d["frame"] for d in decisions)
    assert probe(out).num_frames == 30 - summary["frames_dropped"]


def test_windowed_stream_with_frame_jump(make_run, make_video):
    from harkit.infer.sources import FileSource

    recipe, classes, net = load_run(make_run("bilstm_crnn"))
    model = split_model(recipe, classes, net)
    decisions = []
    stats = run_stream(
        FileSource(make_video(num_frames=40)),
        model,
        StreamConfig(hop=2),
        on_decision=decisions.append,
    )
    assert stats.mode == "windowed" and stats.frame_jump == 4 and stats.window == 8
    assert stats.frames_read == 40 and stats.frames_encoded == 10  # every 4th frame, once
    # every hop of 2 steps, and the file's end (warm-up: the window's 8 steps, hop 2: 4)
    assert stats.decisions == len(decisions) == 6 and stats.warmup_decisions == 4
    assert [d.frame for d in decisions] == [0, 8, 16, 24, 32, 39] and decisions[-1].final


def test_segment_backbone_streams_one_segment_per_step(make_run, make_video):
    from harkit.infer import Recognizer
    from harkit.infer.sources import FileSource

    run, video = make_run("segments_r3d"), make_video(num_frames=22)
    recipe, classes, net = load_run(run)
    model = split_model(recipe, classes, net, fast=False)
    decisions = []
    config = StreamConfig(reset="none", smoothing=0.0)
    stats = run_stream(FileSource(video), model, config, on_decision=decisions.append)
    # 5 full segments of 4 and the last 2 frames, padded at the file's end as predict pads
    assert stats.mode == "incremental" and stats.frames_encoded == 6
    assert [d.frame for d in decisions] == [3, 7, 11, 15, 19, 21]
    # The last decision saw the same 6 segments as a prediction on the 22 decoded frames.
    frames = read_frames(video, range(22))
    pred = Recognizer(model).predict(frames)
    assert decisions[-1].raw_label == pred.label
    assert decisions[-1].raw_confidence == pytest.approx(pred.confidence, abs=1e-4)


def test_clip_model_streams_windowed(make_run, make_video):
    from harkit.infer.sources import FileSource

    recipe, classes, net = load_run(make_run("c3d"))
    model = split_model(recipe, classes, net)
    # Every frame (the default samples a file as predict does: test_stream_agrees.py).
    config = StreamConfig(hop=8, frame_jump=1)
    stats = run_stream(FileSource(make_video(num_frames=24)), model, config)
    # hop 8: steps 9 (the first with >= 8 frames; warming up) and 17 (a full window of
    # 16) decide, and the file's end (step 24)
    assert stats.mode == "windowed" and stats.decisions == 3 and stats.warmup_decisions == 1
    assert stats.frames_encoded == 9 + 16 + 16


class _LiveSource(FrameSource):
    """A live source whose frames are due every 40 ms."""

    live = True
    fps = 25.0

    def __init__(self, count: int) -> None:
        self.name, self.count = "fake-live", count

    def frames(self) -> Iterator[Frame]:
        for i in range(self.count):
            yield Frame(i, i / self.fps, pattern_frames(1, seed=i)[0])


def test_falling_behind_a_live_source_drops_frames(make_run):
    recipe, classes, net = load_run(make_run("small2d"))
    model = split_model(recipe, classes, net)
    ticks = itertools.count()
    # A fake clock that advances 50 ms per reading: processing is always slower than 25 fps.
    stats = run_stream(_LiveSource(30), model, clock=lambda: next(ticks) * 0.05)
    assert stats.frames_dropped > 0
    assert stats.frames_encoded + stats.frames_dropped == stats.frames_read == 30
    assert stats.decisions == stats.frames_encoded + 1  # and the end of the stream's


# -- sources --------------------------------------------------------------------------------


def _faststart_mp4(path: Path, frames: np.ndarray, fps: int = 25) -> bytes:
    """An MP4 with its index first, so it plays while downloading (no range requests)."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps, options={"bf": "0"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


class _Server:
    """A threaded HTTP server on 127.0.0.1 that cuts the first ``cuts`` responses in half."""

    def __init__(self, data: bytes, cuts: int) -> None:
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                cut = owner.hits <= cuts
                self.wfile.write(data[: len(data) // 2] if cut else data)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/clip.mp4"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("cuts", [1, 100])
def test_http_source_reconnects_with_backoff(cuts, cli, make_run, capsys, caplog, tmp_path):
    data = _faststart_mp4(tmp_path / "clip.mp4", pattern_frames(50))
    run = make_run("small2d")
    caplog.set_level(logging.WARNING, logger="harkit.infer.sources")
    with _Server(data, cuts) as server:
        code = cli(
            "stream",
            run,
            "--source",
            server.url,
            "--json",
            "--retries",
            "2",
            "--backoff",
            "0.01",
            "--timeout",
            "2",
        )
    assert code == 0
    decisions, summary = _json_lines(capsys.readouterr().out)
    assert "reconnecting in" in caplog.text
    assert {d["label"] for d in decisions if not d["warming_up"]} <= set(CLASSES)
    if cuts == 1:  # dropped once, resumed where it stopped, played to the end
        assert summary["reconnects"] == 1 and server.hits == 2
        assert summary["frames_read"] == 50 and summary["end_reason"] == "end of stream"
    else:  # always cut: gives up after the bounded retries, keeping what it got
        assert 0 < summary["frames_read"] < 50
        assert server.hits == 3 and "gave no frames" in summary["end_reason"]


def test_unreachable_url_is_a_clear_error(cli, make_run, capsys):
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = cli(
        "stream",
        make_run("small2d"),
        "--source",
        f"http://127.0.0.1:{port}/live.ts",
        "--retries",
        "1",
        "--backoff",
        "0.01",
        "--timeout",
        "1",
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot open stream" in err and "Traceback" not in err


def test_silent_server_times_out_and_gives_up(cli, make_run, capsys):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/live.mp4"
        code = cli(
            "stream",
            make_run("small2d"),
            "--source",
            url,
            "--retries",
            "1",
            "--backoff",
            "0.01",
            "--timeout",
            "0.5",
        )
    err = capsys.readouterr().err
    assert code == 2 and "no answer within 0.5 s" in err and "Traceback" not in err


def test_missing_camera_is_a_clear_error(cli, make_run, capsys):
    code = cli("stream", make_run("small2d"), "--source", "57")
    err = capsys.readouterr().err
    assert code == 2 and "no camera at index 57" in err and "Traceback" not in err


def test_missing_source_file_is_a_clear_error(cli, make_run, capsys, tmp_path):
    code = cli("stream", make_run("small2d"), "--source", tmp_path / "nope.mp4")
    assert code == 2 and "not found" in capsys.readouterr().err


def _special_source(tmp_path: Path, kind: str) -> Path:
    import os

    path = tmp_path / f"{kind}.mp4"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block forever
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone.mp4")
    return path


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("fifo", "is a FIFO (named pipe), not a regular file; not opened"),
        ("device", "is a character device, not a regular file; not opened"),
        ("folder", "is a folder, not a video file"),
        ("dangling", "broken symbolic link"),
    ],
)
def test_special_source_files_are_one_line_errors(cli, make_run, capsys, tmp_path, kind, reason):
    source = _special_source(tmp_path, kind)
    code = cli("stream", make_run("small2d"), "--source", source)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"harkit: error: {source}: {reason}")
    assert len(err.splitlines()) == 1


def test_oversized_source_is_refused(cli, make_run, make_video, capsys, monkeypatch):
    video = make_video("wide.mp4", num_frames=4, height=48, width=64)
    monkeypatch.setenv("HARKIT_MAX_PIXELS", "40x40")
    code = cli("stream", make_run("small2d"), "--source", video)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        f"harkit: error: {video}: frames of 64x48 (3,072 px) exceed the limit of 1,600 px "
        "(set HARKIT_MAX_PIXELS to raise it)"
    )


def test_source_without_decodable_frames_is_one_line(cli, make_run, make_video, capsys, tmp_path):
    data = bytearray(make_video("clip.mp4", num_frames=8).read_bytes())
    at = data.find(b"stsz")  # the sample-size table: nothing can be cut out of the stream
    data[at + 4 : at + 40] = b"\xff" * 36
    broken = tmp_path / "no_samples.mp4"
    broken.write_bytes(bytes(data))
    code = cli("stream", make_run("small2d"), "--source", broken)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"harkit: error: {broken}: no frames could be decoded")
    assert len(err.splitlines()) == 1
