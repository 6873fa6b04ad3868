"""splits.md says which splits it averages, at which level, with how many clips per video,
and which splits left skipped test videos out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harkit.evaluate import EvaluationError, compute_metrics, write_splits_report


def _metrics(level: str):
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    return compute_metrics([0, 1, 1], probs, ["a", "b"], level=level)


def test_splits_report_names_splits_level_clips_and_skips(tmp_path: Path) -> None:
    per_split = {1: _metrics("video"), 3: _metrics("video")}
    coverage = {3: {"total": 5, "evaluated": 3, "skipped": 2, "skipped_file": "s3/skipped.json"}}
    paths = write_splits_report(
        tmp_path,
        per_split,
        title="gru: mean over splits",
        clips=3,
        name="splits-1-3",
        coverage=coverage,
    )
    assert paths["report"] == tmp_path / "splits-1-3.md"
    md = paths["report"].read_text()
    assert md.startswith("# gru: mean over splits 1, 3\n")
    assert "video-level metrics, 3 clips per video (their class probabilities averaged)." in md
    assert (
        "**Warning: split 3: 3 of 5 test videos evaluated, 2 skipped (see s3/skipped.json); "
        "its metrics are over the evaluated videos only.**"
    ) in md
    summary = json.loads((tmp_path / "splits-1-3.json").read_text())
    assert summary["level"] == "video" and summary["clips_per_video"] == 3
    assert summary["coverage"]["3"]["skipped"] == 2
    with pytest.raises(EvaluationError, match="mix clip- and video-level"):
        write_splits_report(tmp_path, {1: _metrics("clip"), 2: _metrics("video")})
