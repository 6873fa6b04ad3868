"""Skipped test videos and classes without test samples are said, not hidden: the printed
line, report.md and metrics.json name how many test videos the metrics are over."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import harkit.cli.main as cli_main
from harkit.data.datasets import DatasetConfig
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig, render_dataset
from harkit.train import train
from tests.helpers.experiments import TINY_RUN as TINY


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A run, and a copy of its data whose test split (6 videos) has 4 unreadable videos:
    every move_left one and one move_right one."""
    tmp = tmp_path_factory.mktemp("coverage")
    config = SynthConfig(
        classes=["move_right", "move_left"],
        num_actors=5,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=3,
    )
    manifest = render_dataset(tmp / "videos", config)
    run = tmp / "run"
    train(
        load_recipe("synthetic-gru", TINY),
        DatasetConfig(root=manifest),
        run,
        store=tmp / "store",
        progress=False,
    )
    copy = tmp / "copy"
    shutil.copytree(tmp / "videos", copy)
    bad = [
        *sorted((copy / "move_left").glob("*_a0[345]_*.mp4")),
        copy / "move_right" / "move_right_a03_c01.mp4",
    ]
    assert len(bad) == 4
    for path in bad:
        path.write_bytes(b"not a video")
    return run, copy / "manifest.csv", tmp / "store-copy"


def test_skipped_test_videos_and_empty_classes_are_reported(
    damaged: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, manifest, store = damaged
    argv = ["evaluate", str(run), "--dataset", str(manifest), "--store", str(store)]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    skipped_file = run / "report" / "skipped.json"
    said = f"2 of 6 test videos evaluated, 4 skipped (see {skipped_file})"
    assert said in out
    report = (run / "report" / "report.md").read_text()
    assert f"Test videos: {said}." in report
    assert f"**Warning: {said}; every metric below is over the 2 evaluated videos only.**" in (
        report
    )
    assert "| move_left (no test sample) | 0 | – |" in report
    assert "over the 1 of 2 classes with test samples (1 without any are left out" in report
    assert "1 of 2 classes have no test sample (move_left)" in report
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["coverage"]["total"] == 6 and metrics["coverage"]["evaluated"] == 2
    assert metrics["coverage"]["skipped"] == 4 and metrics["coverage"]["text"] == said
    assert metrics["classes_without_test_samples"] == ["move_left"]
    assert metrics["metrics"]["num_samples"] == 2


def test_an_evaluation_without_skips_says_all_were_evaluated(
    damaged: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _, _ = damaged
    assert cli_main.main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "(6 of 6 test videos evaluated)" in out
    report = (run / "report" / "report.md").read_text()
    assert "Test videos: 6 of 6 test videos evaluated." in report and "Warning" not in report
    assert "no test sample" not in report
