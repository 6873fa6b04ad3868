"""The README's Quickstart and its long-video (``--segments``) block, word for word in an
empty folder, and the outputs the README shows against what harkit printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.readme import REPO, readme_block

pytestmark = pytest.mark.slow

QUICKSTART = "# harkit-readme-quickstart"
SEGMENTS = "# harkit-readme-segments"
README = REPO / "README.md"


def run_block(block: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """A README bash block as a user runs it: bash -e in ``cwd``, the venv's ``harkit`` and
    ``python`` first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done


def shown_text_after(marker: str) -> str:
    """The ```text block that follows the block starting with ``marker``: what it prints."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(marker) :]
    found = re.search(r"```text\n(.*?)```", after, flags=re.S)
    assert found is not None, f"README.md: no ```text block after {marker}"
    return found.group(1)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    work = tmp_path_factory.mktemp("quickstart")
    done = run_block(readme_block(QUICKSTART, "bash"), work)
    return SimpleNamespace(work=work, out=done.stdout, err=done.stderr)


# a predict line: path, label, confidence, then the runners-up in brackets
PREDICTION = re.compile(
    r"^(\S+\.mp4) +(\w+) (\d\.\d\d)  \(((?:\w+ \d\.\d\d  ){3}\w+ \d\.\d\d)\)$", re.M
)
TOP1 = re.compile(
    r"^clip-level top-1 (\d+\.\d\d)% \((\d+) of (\d+) test videos evaluated\) -> "
    r"runs/demo/report/report\.md$",
    re.M,
)


def test_quickstart_learns_its_set_and_prints_what_the_readme_shows(quickstart) -> None:
    shown = shown_text_after(QUICKSTART)
    # held-out actors only: 2 of 6 actors x 8 classes x 2 clips
    (top1,) = TOP1.findall(quickstart.out)
    assert top1[1:] == ("32", "32"), quickstart.out
    assert float(top1[0]) >= 90.0, quickstart.out  # 96.88 measured; >= 80 is the bar
    (shown_top1,) = TOP1.findall(shown)
    # one clip of 32 is 3.125 points: the README's figure is this run's, give or take a clip
    assert abs(float(shown_top1[0]) - float(top1[0])) <= 3.2, (shown_top1, top1)
    printed = PREDICTION.findall(quickstart.out)
    want = PREDICTION.findall(shown)
    assert len(want) == 2 and [p[:2] for p in printed] == [w[:2] for w in want], quickstart.out
    for got, line in zip(printed, want, strict=True):
        assert got[1] == Path(got[0]).parent.name  # right label on a held-out actor
        assert abs(float(got[2]) - float(line[2])) <= 0.05, (got, line)
    # the stream plays a clip to its end and says its final decision
    assert re.search(r"end of stream; final decision \w+ \d\.\d\d", quickstart.err)
    onnx = quickstart.work / "runs/demo/onnx"
    assert {p.name for p in onnx.iterdir()} >= {"export.json", "head.onnx"}
    assert (quickstart.work / "runs/demo/report/confusion_matrix.png").is_file()


SEGMENT = re.compile(r"^ +(\d+\.\d\d)s - +(\d+\.\d\d)s  (\w+) (\d\.\d\d)$", re.M)
HEADER = re.compile(
    r"^long\.mp4: \d+ windows of \d+\.\d\d s every \d+\.\d\d s -> \d+ segments$", re.M
)


def test_segments_block_labels_the_clips_of_a_long_video_in_order(quickstart) -> None:
    done = run_block(readme_block(SEGMENTS, "bash"), quickstart.work)
    shown = shown_text_after(SEGMENTS)
    header = HEADER.search(done.stdout)
    assert header is not None and header.group(0) == HEADER.search(shown).group(0), done.stdout
    got, want = SEGMENT.findall(done.stdout), SEGMENT.findall(shown)
    # the four clips, in the order the block glued them
    assert (
        [s[2] for s in got] == [s[2] for s in want] == ["wave", "squat_down", "clap", "raise_arms"]
    ), done.stdout
    stride = 16 / 15  # half of a 32-frame training clip at 15 fps
    for g, w in zip(got, want, strict=True):
        assert abs(float(g[0]) - float(w[0])) <= stride / 2 + 0.01, (g, w)
        assert abs(float(g[1]) - float(w[1])) <= stride / 2 + 0.01, (g, w)
        # confidences vary between runs (the first segment, straddling a change of clip, gave
        # 0.68 and 0.79 in two full-suite runs; the README says so)
        assert abs(float(g[3]) - float(w[3])) <= 0.15, (g, w)
    out = quickstart.work / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "long.mp4.segments.csv",
        "long.mp4.segments.json",
        "long.mp4.windows.csv",
    ]
