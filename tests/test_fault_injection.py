"""Fault injection: every CLI verb over a folder dataset mixing good tiny videos with broken,
special and hostile files.

The corpus (``root/<class>/<file>``) holds, besides good 32x32 clips: a zero-byte file, text
named .mp4, a truncated mp4, an mp4 whose moov atom is garbage, an audio-only mp4, a FIFO, a
socket, a link to a character device (/dev/zero: reading it never ends), a folder named
x.mp4, a broken symlink, a clip over the frame-size limit (lowered for the test) and, when
not running as root, a frame folder without read permission. Good files include a 1-frame
clip, an odd 33x17 size, names with spaces, unicode and a newline, and an AVI whose header
claims 1e9 frames (it must be counted, not trusted).

Each verb runs as a subprocess with a timeout: no hang, no traceback, every bad file
reported in the verb's skip JSON (or output), every good file processed.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from harkit.data.clips import ClipDataset, SkippedVideo
from harkit.data.datasets import folder_index
from harkit.data.inspect import summarize
from harkit.data.sampling import SamplingConfig
from harkit.synth import write_video
from tests.helpers.frames import claim_frames

#: The frame-size limit every verb runs under here: the good clips (32x32, 33x17) pass, the
#: 64x48 "oversize" clip stands in for an 8192x8192 one without costing its memory.
PIXEL_LIMIT = "40x40"
#: Seconds one verb may take before it counts as hung (generous: 2 shared CPU cores).
VERB_TIMEOUT = 300
CLASSES = ("jump", "run")


@dataclass
class Corpus:
    root: Path
    good: set[str] = field(default_factory=set)
    #: path -> a phrase its skip reason must contain
    bad: dict[str, str] = field(default_factory=dict)
    one_frame: str = ""
    big_claim: str = ""


def _frames(n: int, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _write_odd_size(path: Path, height: int, width: int, n: int = 6) -> None:
    """MJPEG in AVI at any size (H.264 yuv420p needs even sizes), in every FFmpeg build."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj444p"
        for frame in _frames(n, height, width, seed=7):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def build_corpus(root: Path) -> Corpus:
    corpus = Corpus(root)
    jump, run = (root / c for c in CLASSES)
    for folder in (jump, run):
        folder.mkdir(parents=True)

    def good(path: Path) -> Path:
        corpus.good.add(str(path))
        return path

    def bad(path: Path, reason: str) -> Path:
        corpus.bad[str(path)] = reason
        return path

    for k, folder in enumerate((jump, run, jump, run, jump, run)):
        write_video(good(folder / f"{folder.name}_a{k:02d}_c01.mp4"), _frames(8, seed=k), fps=8)
    # awkward but valid
    write_video(good(jump / "with space_a10_c01.mp4"), _frames(8, seed=10), fps=8)
    write_video(good(run / "ünïcödé_a11_c01.mp4"), _frames(8, seed=11), fps=8)
    write_video(good(jump / "new\nline_a12_c01.mp4"), _frames(8, seed=12), fps=8)
    corpus.one_frame = str(good(run / "one_frame_a13_c01.mp4"))
    write_video(corpus.one_frame, _frames(1, seed=13), fps=8)
    _write_odd_size(good(jump / "odd_size_a14_c01.avi"), 17, 33)
    big_claim = good(run / "claims_1e9_frames_a15_c01.avi")
    write_video(big_claim, _frames(8, seed=15), fps=8)
    claim_frames(big_claim, 10**9)
    corpus.big_claim = str(big_claim)

    # broken files
    bad(jump / "zero_bytes.mp4", "empty (0 bytes)").write_bytes(b"")
    bad(run / "text.mp4", "not a readable video").write_text("this is not a video\n" * 20)
    sample = (jump / f"{jump.name}_a00_c01.mp4").read_bytes()
    bad(run / "truncated.mp4", "not a readable video").write_bytes(sample[: len(sample) // 3])
    moov = sample.find(b"moov")
    size = struct.unpack_from(">I", sample, moov - 4)[0]
    garbage = np.random.default_rng(3).integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    corrupt = sample[: moov + 4] + garbage + sample[moov - 4 + size :]
    bad(jump / "corrupt_moov.mp4", "no video stream").write_bytes(corrupt)
    _write_audio_only(bad(run / "audio_only.mp4", "no video stream"))
    write_video(bad(jump / "oversize.mp4", "exceed the limit"), _frames(4, 48, 64), fps=8)
    # special files: none may be opened (a FIFO blocks the open, /dev/zero never ends)
    os.mkfifo(bad(jump / "fifo.mp4", "FIFO"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock_path = bad(run / "sock.mp4", "socket")
    cwd = os.getcwd()
    try:  # bind by a short relative name: AF_UNIX paths are limited to ~107 bytes
        os.chdir(run)
        sock.bind(sock_path.name)
    finally:
        os.chdir(cwd)
        sock.close()  # the socket file stays
    os.symlink("/dev/zero", bad(run / "device.mp4", "character device"))
    bad(jump / "folder.mp4", "is a folder").mkdir()
    os.symlink(jump / "missing.mp4", bad(run / "dangling.mp4", "broken symbolic link"))
    if os.geteuid() != 0:  # root reads through any mode: tests/data fakes the refusal instead
        locked = bad(jump / "locked_frames_g99_c01", "cannot list the folder (Permission denied)")
        locked.mkdir()
        (locked / "0001.jpg").write_bytes(b"")
        locked.chmod(0)
    return corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture
def pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARKIT_MAX_PIXELS", PIXEL_LIMIT)


# -- in-process: the shared mechanisms over the whole corpus -----------------------------------


def test_index_lists_every_file_named_like_a_video(corpus: Corpus) -> None:
    index = folder_index(corpus.root)
    assert {str(item.path) for item in index} == corpus.good | set(corpus.bad)
    assert index.classes == list(CLASSES)


def test_inspect_reports_each_bad_file_with_its_reason(corpus: Corpus, pixel_limit) -> None:
    summary = summarize(folder_index(corpus.root))
    assert set(summary.unreadable) == set(corpus.bad)
    for path, phrase in corpus.bad.items():
        assert phrase in summary.unreadable[path], (path, summary.unreadable[path])
    assert summary.frames["max"] == 8  # the 1e9-frame claim was counted, not believed


def test_clip_dataset_skips_bad_and_reads_good(corpus: Corpus, pixel_limit) -> None:
    index = folder_index(corpus.root)
    for strategy in ("uniform", "all", "segments"):
        dataset = ClipDataset(
            index, SamplingConfig(strategy=strategy, num_frames=4, segment_length=4)
        )
        items = {str(index[i].path): dataset[i] for i in range(len(index))}
        skipped = {p for p, item in items.items() if isinstance(item, SkippedVideo)}
        assert skipped == set(corpus.bad), strategy
        assert int(items[corpus.big_claim]["mask"].sum()) in (4, 8)


# -- every CLI verb as a subprocess ------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


def harkit(*args: str | Path, cwd: Path) -> Result:
    env = {**os.environ, "HARKIT_MAX_PIXELS": PIXEL_LIMIT, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "harkit.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=VERB_TIMEOUT,
        cwd=cwd,
        env=env,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _reasons(path: Path) -> dict[str, str]:
    return json.loads(path.read_text(encoding="utf-8"))


def _check_reasons(found: dict[str, str], expected: dict[str, str]) -> None:
    assert set(found) == set(expected), sorted(set(found) ^ set(expected))
    for path, phrase in expected.items():
        assert phrase in found[path], (path, found[path])


@pytest.fixture(scope="module")
def work(corpus: Corpus) -> Iterator[Path]:
    folder = corpus.root.parent / "work"
    folder.mkdir()
    yield folder


@pytest.mark.slow
def test_data_inspect_cli(corpus: Corpus, work: Path) -> None:
    r = harkit("data", "inspect", corpus.root, "--json", work / "inspect.json", cwd=work)
    assert r.code == 0, r.err
    _check_reasons(_reasons(work / "inspect.json")["unreadable"], corpus.bad)
    assert f"unreadable: {len(corpus.bad)}" in r.out


@pytest.mark.slow
def test_extract_cli(corpus: Corpus, work: Path) -> None:
    store = work / "extract-store"
    r = harkit(
        "extract",
        corpus.root,
        "--recipe",
        "synthetic-gru",
        "--store",
        store,
        "--workers",
        "2",
        "--no-progress",
        "--report",
        work / "extract.json",
        cwd=work,
    )
    assert r.code == 0, r.err
    _check_reasons(_reasons(store / "extract_skipped.json"), corpus.bad)
    report = _reasons(work / "extract.json")
    assert report["extracted"] == len(corpus.good) and report["failed"] == len(corpus.bad)


@pytest.mark.slow
def test_flow_cli(corpus: Corpus, work: Path) -> None:
    out = work / "flow"
    r = harkit(
        "flow",
        corpus.root,
        "--out",
        out,
        "--method",
        "farneback",
        "--size",
        "32",
        "--workers",
        "2",
        "--no-progress",
        cwd=work,
    )
    assert r.code == 0, r.err
    # flow needs two frames: the 1-frame clip is skipped too, and says why
    _check_reasons(
        _reasons(out / "flow_skipped.json"),
        {**corpus.bad, corpus.one_frame: "flow needs at least 2"},
    )
    assert len(list(out.rglob("*.npz"))) == len(corpus.good) - 1


@pytest.fixture(scope="module")
def trained(corpus: Corpus, work: Path) -> tuple[Path, Result]:
    run = work / "run"
    r = harkit(
        "train",
        "--recipe",
        "synthetic-gru",
        "--dataset",
        corpus.root,
        "--store",
        work / "train-store",
        "--run",
        run,
        "--no-progress",
        "--set",
        "optim.epochs=1",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.val_fraction=0",
        "--set",
        "head.hidden=8",
        cwd=work,
    )
    return run, r


@pytest.mark.slow
def test_train_and_evaluate_cli(corpus: Corpus, work: Path, trained: tuple[Path, Result]) -> None:
    run, r = trained
    assert r.code == 0, r.err
    in_train = _reasons(run / "skipped.json")
    info = _reasons(run / "run.json")
    assert set(in_train) <= set(corpus.bad)
    assert info["counts"]["train"] + info["counts"]["test"] == len(corpus.good) + len(corpus.bad)
    _check_reasons(_reasons(work / "train-store" / "extract_skipped.json"), corpus.bad)

    e = harkit("evaluate", run, cwd=work)
    assert e.code == 0, e.err
    in_test = _reasons(run / "report" / "skipped.json")
    assert not set(in_train) & set(in_test)
    # every bad file was met on one side or the other, and no good one was skipped
    _check_reasons({**in_train, **in_test}, corpus.bad)


@pytest.mark.slow
def test_end_to_end_train_and_evaluate_cli(corpus: Corpus, work: Path) -> None:
    """End-to-end mode decodes in the training loop: bad videos reach Lightning as skip
    markers (this died with 'A frozen dataclass was passed to apply_to_collection')."""
    run = work / "run-c3d"
    r = harkit(
        "train",
        "--recipe",
        "c3d-gru",
        "--dataset",
        corpus.root,
        "--run",
        run,
        "--no-progress",
        "--set",
        "optim.epochs=1",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.val_fraction=0",
        "--set",
        "network.size=16",
        "--set",
        "network.units=4",
        "--set",
        "input.sampling.num_frames=8",
        cwd=work,
    )
    assert r.code == 0, r.err
    in_train = _reasons(run / "skipped.json")
    assert in_train and set(in_train) <= set(corpus.bad)
    e = harkit("evaluate", run, cwd=work)
    assert e.code == 0, e.err
    _check_reasons({**in_train, **_reasons(run / "report" / "skipped.json")}, corpus.bad)


@pytest.mark.slow
def test_predict_cli(corpus: Corpus, work: Path, trained: tuple[Path, Result]) -> None:
    run, r = trained
    assert r.code == 0, r.err
    p = harkit("predict", run, corpus.root, "--json", "--no-progress", cwd=work)
    assert p.code == 0, p.err
    rows = [json.loads(line) for line in p.out.splitlines() if line.strip()]
    errors = {row["source"]: row["error"] for row in rows if "error" in row}
    labels = {row["source"]: row["label"] for row in rows if "label" in row}
    _check_reasons(errors, corpus.bad)
    assert set(labels) == corpus.good and set(labels.values()) <= set(CLASSES)
    assert f"{len(corpus.bad)} of {len(rows)} videos could not be read" in p.err


#: Runs ``harkit stream RUN --source S`` through the CLI's ``main`` for each source given,
#: in one process (each start costs seconds of imports): one JSON line per source.
STREAM_EACH = """
import contextlib, io, json, sys
from harkit.cli.main import main
run, sources = sys.argv[1], sys.argv[2:]
for source in sources:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["stream", run, "--source", source])
    print(json.dumps({"source": source, "code": code, "err": err.getvalue()}), flush=True)
"""


@pytest.mark.slow
def test_stream_cli(corpus: Corpus, work: Path, trained: tuple[Path, Result]) -> None:
    run, r = trained
    assert r.code == 0, r.err
    good = harkit("stream", run, "--source", corpus.big_claim, "--json", cwd=work)
    assert good.code == 0, good.err
    summary = json.loads(good.out.splitlines()[-1])
    assert summary["type"] == "summary" and summary["frames_read"] == 8
    proc = subprocess.run(
        [sys.executable, "-c", STREAM_EACH, str(run), *corpus.bad],
        capture_output=True,
        text=True,
        timeout=VERB_TIMEOUT,
        cwd=work,
        env={**os.environ, "HARKIT_MAX_PIXELS": PIXEL_LIMIT},
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [row["source"] for row in results] == list(corpus.bad)
    for row in results:
        lines = [line for line in row["err"].splitlines() if line.strip()]
        assert row["code"] == 2 and len(lines) == 1, row
        assert lines[0].startswith(f"harkit: error: {row['source']}: "), row
        assert corpus.bad[row["source"]] in lines[0], row
