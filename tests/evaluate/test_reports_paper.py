"""Reports print the paper's number beside harkit's for every number the recipe reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.evaluate import Metrics, compute_metrics, write_report, write_splits_report
from harkit.evaluate.paper import compare_with_paper, dataset_id, paper_numbers


def _metrics(seed: int = 0, n: int = 60, classes: int = 4, level: str = "clip") -> Metrics:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    p = rng.random((n, classes))
    p[np.arange(n), y] += 0.5
    return compute_metrics(y, p, [f"c{i}" for i in range(classes)], level=level)


def test_reported_keys_parse_into_dataset_split_and_metric() -> None:
    numbers = paper_numbers(
        {"ucf101_top1": 90.83, "hmdb51_split1_top1": 84.59, "ucf101_f1": 90.53, "odd": 1.0}
    )
    assert [(n.dataset, n.split, n.metric) for n in numbers] == [
        ("ucf101", None, "top1"),
        ("hmdb51", 1, "top1"),
        ("ucf101", None, "f1_weighted"),  # seed 004's recall equals its accuracy: weighted
        (None, None, None),
    ]
    assert dataset_id("UCF-101") == "ucf101" and dataset_id("") is None


def test_compare_with_paper_matches_dataset_and_split_only() -> None:
    harkit = {"top1": 0.5, "f1_weighted": 0.4}
    reported = {
        "ucf50_top1": 89.89,
        "ucf101_top1": 90.0,
        "ucf50_split2_top1": 88.0,
        "ucf50_f1": 70.0,
    }
    rows = compare_with_paper(reported, harkit, dataset="ucf50", split=2)
    assert [(r["key"], r["paper"], r["harkit"]) for r in rows] == [
        ("ucf50_top1", pytest.approx(0.8989), None),  # the paper's mean over folds: not fold 2
        ("ucf101_top1", pytest.approx(0.90), None),  # another dataset
        ("ucf50_split2_top1", pytest.approx(0.88), 0.5),  # this very fold
        ("ucf50_f1", pytest.approx(0.70), None),
    ]
    # a mean over splits goes beside the paper's means
    means = compare_with_paper(reported, harkit, dataset="ucf50", split=None)
    assert [r["harkit"] for r in means] == [0.5, None, None, 0.4]
    assert all(r["harkit"] is None for r in compare_with_paper(reported, harkit, dataset=None))


def test_evaluation_report_shows_paper_beside_harkit(tmp_path: Path) -> None:
    clip, video = _metrics(0), _metrics(1, n=20, level="video")
    split = {"dataset": "ucf50", "split": 1, "leakage": "none"}
    paths = write_report(
        tmp_path / "r",
        clip,
        split_info=split,
        video_level=video,
        reported={"ucf50_split1_top1": 89.89, "ucf101_top1": 90.83, "ucf50_top1": 88.0},
    )
    md = paths["report"].read_text()
    assert "## Paper vs harkit" in md
    assert "| Reported | Metric | paper (%) | harkit (%) |" in md
    # The papers count one prediction per video: harkit's video level goes beside them.
    assert f"| ucf50_split1_top1 | Top-1 accuracy | 89.89 | {100 * video.top1:.2f} |" in md
    assert "| ucf101_top1 | Top-1 accuracy | 90.83 | – |" in md
    assert "| ucf50_top1 | Top-1 accuracy | 88.00 | – |" in md  # one fold is not the mean
    paper = json.loads(paths["metrics"].read_text())["paper"]
    assert paper[0] == {
        "key": "ucf50_split1_top1",
        "metric": "top1",
        "paper": pytest.approx(0.8989),
        "harkit": video.top1,
    }

    plain = write_report(tmp_path / "p", clip, split_info=split)
    assert "Paper vs harkit" not in plain["report"].read_text()
    assert "paper" not in json.loads(plain["metrics"].read_text())


def test_splits_report_puts_means_and_splits_beside_the_papers(tmp_path: Path) -> None:
    per_split = {"1": _metrics(0), "2": _metrics(1), "3": _metrics(2)}
    reported = {"hmdb51_top1": 84.08, "hmdb51_split1_top1": 84.59, "ucf101_top1": 96.09}
    paths = write_splits_report(tmp_path, per_split, reported=reported, dataset="hmdb51")
    summary = json.loads(paths["json"].read_text())
    harkit = {row["key"]: row["harkit"] for row in summary["paper"]}
    assert harkit["hmdb51_top1"] == pytest.approx(summary["mean"]["top1"])
    assert harkit["hmdb51_split1_top1"] == pytest.approx(per_split["1"].top1)
    assert harkit["ucf101_top1"] is None
    md = paths["report"].read_text()
    assert f"| hmdb51_top1 | Top-1 accuracy | 84.08 | {100 * summary['mean']['top1']:.2f} |" in md


def test_splits_report_names_the_top_k_it_computed(tmp_path: Path) -> None:
    # With 3 classes top-k is top-3: a "Top-5" column would mislabel it.
    paths = write_splits_report(
        tmp_path, {"1": _metrics(0, classes=3), "2": _metrics(1, classes=3)}
    )
    md = paths["report"].read_text()
    assert "Top-3 accuracy" in md and "Top-5" not in md
