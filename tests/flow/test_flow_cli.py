from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harkit.cli.flow import register
from harkit.data.datasets import VideoIndex
from harkit.flow import load_flow


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harkit")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_flow_command_writes_and_resumes(
    video_tree: Path, index: VideoIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flow"
    argv = [
        "flow",
        str(video_tree),
        "--out",
        str(out),
        "--method",
        "dis-fast",
        "--size",
        "32",
        "--stride",
        "2",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert _run(argv) == 0
    assert "6 videos, 6 computed" in capsys.readouterr().out
    stored = load_flow(out / "right" / "c0.mp4.npz")
    assert stored.indices.tolist() == [0, 2, 4, 6] and stored.flow.shape == (3, 32, 43, 2)
    assert _run(argv) == 0
    assert "0 computed (0 pairs, 0.0 pairs/s), 6 already done" in capsys.readouterr().out


def test_flow_command_rejects_unknown_method(video_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _run(["flow", str(video_tree), "--out", str(tmp_path), "--method", "sift"])
