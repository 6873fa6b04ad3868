"""Report files, confusion matrix pictures, split averaging, comparison tables."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from harkit.evaluate import (
    EvaluationError,
    Metrics,
    average_over_splits,
    compute_metrics,
    format_prediction,
    plot_confusion_matrix,
    write_comparison_table,
    write_report,
    write_splits_report,
)

SPLIT = {"dataset": "ucf101", "split": 1, "train": 9537, "test": 3783, "leakage": "none"}


def _metrics(num_classes: int, n: int = 120, seed: int = 0, level: str = "clip") -> Metrics:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    p = rng.random((n, num_classes))
    p[np.arange(n), y] += 0.6
    return compute_metrics(y, p, [f"Class{i}" for i in range(num_classes)], level=level)


def test_write_report_files_and_contents(tmp_path: Path):
    clip = _metrics(5)
    video = _metrics(5, n=40, seed=1, level="video")
    paths = write_report(
        tmp_path / "run", clip, split_info=SPLIT, title="UCF101 split 1", video_level=video
    )
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == sorted(
        [
            "report.md",
            "metrics.json",
            "confusion_matrix.csv",
            "confusion_matrix.png",
            "confusion_matrix_normalized.png",
        ]
    )  # and no temp files left behind
    md = paths["report"].read_text()
    assert "# UCF101 split 1" in md
    assert "Split: dataset: ucf101, split: 1, train: 9537, test: 3783." in md
    assert "Leakage check: none." in md
    assert "| Metric | Clip level (%) | Video level (%) |" in md
    assert f"| Top-1 accuracy | {100 * clip.top1:.2f} | {100 * video.top1:.2f} |" in md
    assert "Samples: 120 (clip level), 40 (video level)." in md
    assert "| Class3 |" in md
    assert "## Training" not in md  # nothing said about training when nothing is known
    assert "](confusion_matrix.png)" in md and "](confusion_matrix_normalized.png)" in md

    data = json.loads(paths["metrics"].read_text())
    assert data["split_info"] == SPLIT
    assert data["metrics"]["top1"] == pytest.approx(clip.top1)
    assert data["video_level"]["num_samples"] == 40
    assert Metrics.from_dict(data["metrics"]).headline() == clip.headline()

    with paths["confusion_csv"].open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["true\\predicted"] + [f"Class{i}" for i in range(5)]
    assert rows[3][0] == "Class2"
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=int), clip.confusion)


def test_report_without_split_info_says_so(tmp_path: Path):
    m = _metrics(3, n=30)
    md = write_report(tmp_path, m, classes=["a|b", "c", "d"])["report"].read_text()
    assert "Leakage check: not reported." in md
    assert "a\\|b" in md  # a pipe in a class name does not break the table
    with pytest.raises(EvaluationError, match="2 class names"):
        write_report(tmp_path, m, classes=["a", "b"])


def test_confusion_png_scales_with_class_count(tmp_path: Path):
    small, large = _metrics(10, n=50), _metrics(101, n=303)
    small_png = plot_confusion_matrix(small.confusion, small.classes, tmp_path / "s.png", True)
    large_png = plot_confusion_matrix(large.confusion, large.classes, tmp_path / "l.png", False)
    small_img, large_img = mpimg.imread(small_png), mpimg.imread(large_png)
    assert small_img.ndim == 3 and small_img.shape[2] in (3, 4)
    # 101 classes at >= 0.18 in per class and 120 dpi: rows of at least ~20 px
    assert large_img.shape[0] >= 101 * 20 and large_img.shape[1] >= 101 * 20
    assert large_img.shape[0] < 5000  # and not absurdly large
    assert large_img.shape[0] > 1.5 * small_img.shape[0]
    assert small_img[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_confusion_png_rejects_wrong_shape(tmp_path: Path):
    with pytest.raises(EvaluationError, match="does not fit 3 class names"):
        plot_confusion_matrix(np.ones((2, 2), int), ["a", "b", "c"], tmp_path / "x.png")


def test_plotting_needs_no_display(tmp_path: Path):
    # An interactive backend and no display: pictures still render (no pyplot involved).
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    code = (
        "import sys, numpy as np\n"
        "from harkit.evaluate import plot_confusion_matrix\n"
        f"plot_confusion_matrix(np.eye(3, dtype=int), list('abc'), {str(tmp_path / 'h.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert mpimg.imread(tmp_path / "h.png").shape[0] > 100


def _with_top1(m: Metrics, top1: float, f1: float) -> Metrics:
    return dataclasses.replace(m, top1=top1, f1_macro=f1)


def test_average_over_splits_mean_and_std(tmp_path: Path):
    base = _metrics(4, n=40)
    per_split = {
        1: _with_top1(base, 0.9, 0.5),
        2: _with_top1(base, 0.8, 0.5),
        3: _with_top1(base, 0.7, 0.8),
    }
    summary = average_over_splits(per_split)
    assert summary["splits"] == ["1", "2", "3"] and summary["num_splits"] == 3
    assert summary["mean"]["top1"] == pytest.approx(0.8)
    assert summary["std"]["top1"] == pytest.approx(np.sqrt(0.02 / 3))
    assert summary["mean"]["f1_macro"] == pytest.approx(0.6)
    assert summary["std"]["top5"] == pytest.approx(0.0)
    assert summary["per_split"]["2"]["top1"] == pytest.approx(0.8)

    paths = write_splits_report(tmp_path, per_split)
    md = paths["report"].read_text()
    assert md.startswith("# Results over splits 1, 2, 3\n")
    assert "Mean over splits 1, 2, 3: top-1 80.00% ± 8.16%" in md and "clip-level metrics" in md
    assert "top-1 80.00% ± 8.16%" in md
    assert md.count("\n| ") == 6  # header + 3 splits + mean + std
    assert json.loads(paths["json"].read_text())["mean"]["top1"] == pytest.approx(0.8)


def test_average_over_splits_rejects_bad_input():
    with pytest.raises(EvaluationError, match="no splits"):
        average_over_splits({})
    with pytest.raises(EvaluationError, match="number of classes"):
        average_over_splits({1: _metrics(3, n=30), 2: _metrics(4, n=40)})


def test_comparison_table_keeps_order_and_formats(tmp_path: Path):
    rows = [
        {"variant": "2 GRU x 256", "params": 2_768_692, "top1": 0.8459, "f1": 0.84},
        {"variant": "2 LSTM x 256", "params": 3_687_220, "top1": 0.8312},
        {"variant": "1 LSTM x 512", "params": np.int64(6_321_716), "top1": np.float32(0.8)},
    ]
    paths = write_comparison_table(
        rows, tmp_path, "hmdb51_heads", ["variant", "params", "top1", "f1"]
    )
    md = paths["markdown"].read_text().splitlines()
    assert md[2] == "| variant | params | top1 | f1 |"
    assert md[4] == "| 2 GRU x 256 | 2,768,692 | 0.8459 | 0.8400 |"
    assert md[5] == "| 2 LSTM x 256 | 3,687,220 | 0.8312 | – |"
    assert md[6].startswith("| 1 LSTM x 512 | 6,321,716 | 0.8000 |")
    with paths["csv"].open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["variant"] for r in table] == [r["variant"] for r in rows]
    assert table[0]["params"] == "2768692" and table[1]["f1"] == ""


def test_comparison_table_default_columns_and_errors(tmp_path: Path):
    paths = write_comparison_table([{"a": 1}, {"b": 2.5}], tmp_path, "t")
    assert paths["csv"].read_text().splitlines() == ["a,b", "1,", ",2.5"]
    with pytest.raises(EvaluationError, match="no rows"):
        write_comparison_table([], tmp_path, "t")
    with pytest.raises(EvaluationError, match="names files"):
        write_comparison_table([{"a": 1}], tmp_path, "../escape")
    with pytest.raises(EvaluationError, match="appear in no row"):
        write_comparison_table([{"a": 1}], tmp_path, "t", ["a", "typo"])


def test_format_prediction():
    assert format_prediction("Diving", 0.98) == "Class: Diving, Confidence: 0.98"
    assert format_prediction("Rowing", np.float32(0.9761)) == "Class: Rowing, Confidence: 0.98"
    with pytest.raises(EvaluationError):
        format_prediction("Diving", float("nan"))


def _table(md: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading`` (header row first)."""
    lines = md[md.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_every_report_table_uses_one_unit_and_names_it(tmp_path: Path):
    m = _metrics(4, n=40)
    md = write_report(tmp_path / "r", m)["report"].read_text()
    per_class = _table(md, "## Per-class results")
    assert "## Per-class results (clip level, %)" in md
    assert per_class[0] == [
        "Class",
        "Support",
        "Accuracy (%)",
        "Precision (%)",
        "Recall (%)",
        "F1 (%)",
    ]
    for row, cls in zip(per_class[1:], m.per_class, strict=True):
        # precision / recall / F1 are percentages like accuracy, not 0-1 fractions
        assert row[2:] == [
            f"{100 * v:.2f}" for v in (cls.accuracy, cls.precision, cls.recall, cls.f1)
        ]
    summary = _table(md, "## Summary")
    assert summary[0] == ["Metric", "Clip level (%)"]
    assert all(float(row[1]) > 1 for row in summary[1:] if row[0] == "Top-1 accuracy")

    splits = write_splits_report(tmp_path / "s", {1: m, 2: m})["report"].read_text()
    header, *rows = _table(splits, "| Split")
    assert header[0] == "Split" and all(h.endswith("(%)") for h in header[1:])
    assert rows[0][1] == f"{100 * m.top1:.2f}"


TRAINING = {
    "epochs_trained": 12,
    "val_acc": 0.875,
    "checkpoint": {
        "which": "best",
        "file": "checkpoints/best.ckpt",
        "epoch": 9,
        "reason": "highest validation accuracy",
    },
    "weights": "model.safetensors",
}


def test_report_says_which_weights_were_tested(tmp_path: Path):
    paths = write_report(tmp_path, _metrics(3, n=30), training=TRAINING)
    md = paths["report"].read_text()
    assert "- Epochs trained: 12" in md
    assert "- Validation accuracy: 87.50% (best val/acc)" in md
    assert (
        "- Checkpoint used: best (checkpoints/best.ckpt, epoch 9 of 12): highest validation "
        "accuracy, exported to model.safetensors"
    ) in md
    assert json.loads(paths["metrics"].read_text())["training"] == TRAINING

    last = {
        "epochs_trained": 3,
        "val_acc": None,
        "checkpoint": {"which": "last", "file": "checkpoints/last.ckpt", "epoch": 3},
    }
    md = write_report(tmp_path / "last", _metrics(3, n=30), training=last)["report"].read_text()
    assert "- Validation accuracy: none (no validation split)" in md
    assert "- Checkpoint used: last (checkpoints/last.ckpt, epoch 3 of 3)" in md


def test_splits_report_has_each_splits_training(tmp_path: Path):
    m = _metrics(3, n=30)
    paths = write_splits_report(tmp_path, {1: m, 2: m}, training={1: TRAINING})
    assert json.loads(paths["json"].read_text())["training"] == {"1": TRAINING}
    rows = _table(paths["report"].read_text(), "## Training per split")
    assert rows[0] == ["Split", "Epochs trained", "Validation accuracy (%)", "Checkpoint used"]
    assert rows[1][:3] == ["1", "12", "87.50"] and rows[1][3].startswith("best (checkpoints/")
    assert rows[2] == ["2", "–", "–", "–"]
    with pytest.raises(EvaluationError, match=r"splits \['3'\]"):
        write_splits_report(tmp_path, {1: m}, training={3: TRAINING})
