"""The mean over splits: ``harkit train --splits`` then ``harkit evaluate RUN --splits``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.cli.main import main
from harkit.experiments import split_dirs
from harkit.train.run import RunError


def _train_args(recipe: Path, videos: Path, ann: Path, run: Path, splits: str) -> list[str]:
    return [
        "train",
        "--recipe",
        str(recipe),
        "--dataset",
        str(videos),
        "--kind",
        "ucf101",
        "--annotations",
        str(ann),
        "--run",
        str(run),
        "--splits",
        splits,
        "--store",
        str(run.parent / "store"),
        "--no-progress",
    ]


@pytest.fixture
def trained(ucf, tmp_path: Path) -> Path:
    """``RUN/split1`` and ``RUN/split2`` as ``harkit train --splits 1,2`` writes them."""
    videos, ann, recipe = ucf
    run = tmp_path / "run"
    assert main(_train_args(recipe, videos, ann, run, "1,2")) == 0
    return run


@pytest.mark.slow
def test_evaluate_splits_writes_the_mean_and_how_each_split_trained(trained, tmp_path, capsys):
    out = tmp_path / "again"
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--splits", "1,2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean top-1 over splits 1,2 (clip-level, 1 clip per video)" in printed
    assert str(out / "splits.md") in printed

    summary = json.loads((out / "splits.json").read_text())
    per_split = []
    for k in (1, 2):
        metrics = json.loads((out / f"split{k}" / "metrics.json").read_text())
        assert metrics["split_info"]["split"] == k  # each run on its own split
        per_split.append(metrics["metrics"]["top1"])
        info = json.loads((trained / f"split{k}" / "run.json").read_text())
        training = summary["training"][str(k)]
        assert training == metrics["training"]
        assert training["epochs_trained"] == info["epochs_run"] == 1
        assert training["val_acc"] == info["best_score"]
        assert training["checkpoint"]["file"] == info["exported"]["checkpoint"]
        # both count from 1; run.json keeps Lightning's 0-based index as epoch_index
        assert training["checkpoint"]["epoch"] == info["exported"]["epoch"]
        assert info["exported"]["epoch"] == info["exported"]["epoch_index"] + 1
    assert summary["splits"] == ["1", "2"]
    assert summary["mean"]["top1"] == pytest.approx(np.mean(per_split))
    assert summary["std"]["top1"] == pytest.approx(np.std(per_split))
    # the same folder and numbers as 'harkit train --splits' wrote: evaluation is repeatable
    first = json.loads((trained / "splits.json").read_text())
    assert first["mean"] == pytest.approx(summary["mean"])
    md = (out / "splits.md").read_text()
    assert "## Training per split" in md and "| Top-1 accuracy (%) |" in md.replace(
        "| Split ", "| "
    )
    assert "Validation accuracy (%)" in md and "checkpoints/" in md
    # the heading names the splits; the level and clips per video are said
    assert md.startswith("# tiny-gru: mean over splits 1, 2\n")
    assert "clip-level metrics, 1 clip per video." in md
    assert summary["level"] == "clip" and summary["clips_per_video"] == 1

    # without --out: RUN/split<k>/report/ and, for some of RUN's splits, RUN/splits-2.md: the
    # mean over every split (splits.md) is kept
    whole = (trained / "splits.md").read_bytes(), (trained / "splits.json").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--splits", "2", "--clips", "2"]) == 0
    assert str(trained / "splits-2.md") in capsys.readouterr().out
    assert ((trained / "splits.md").read_bytes(), (trained / "splits.json").read_bytes()) == whole
    assert (trained / "split2" / "report" / "report.md").is_file()
    assert json.loads((trained / "splits-2.json").read_text())["splits"] == ["2"]
    md = (trained / "splits-2.md").read_text()
    assert md.startswith("# tiny-gru: mean over splits 2\n")
    assert "video-level metrics, 2 clips per video (their class probabilities averaged)" in md


@pytest.mark.slow
def test_evaluate_splits_refuses_what_it_cannot_average(trained, tmp_path, capsys):
    capsys.readouterr()
    cases = [
        (
            ["evaluate", str(trained), "--splits", "1,3"],
            [str(trained / "split3"), "split1, split2"],
        ),
        (["evaluate", str(trained), "--splits", "1,2", "--split", "2"], ["--split 2 and --splits"]),
        (["evaluate", str(trained / "split1"), "--splits", "1"], ["no run folder for split 1"]),
        (["evaluate", str(tmp_path / "nowhere"), "--splits", "1"], ["folder not found"]),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        for text in expected:
            assert text in err, (argv, err)
    with pytest.raises(SystemExit) as exit_:  # refused while parsing, before anything loads
        main(["evaluate", str(trained), "--splits", "1,1"])
    assert exit_.value.code == 2 and "distinct split numbers" in capsys.readouterr().err
    # a split folder holding another split's run is not averaged as if it were that split
    (trained / "split2").rename(trained / "split3")
    with pytest.raises(RunError, match="trained on split 2, not split 3"):
        split_dirs(trained, [1, 3])
