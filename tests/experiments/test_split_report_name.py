"""Which file a mean over splits goes to: ``splits.md`` only for every split run the folder
holds; a mean over fewer is named for its splits and never replaces it."""

from __future__ import annotations

from pathlib import Path

from harkit.experiments.splits import report_name


def test_a_mean_over_some_splits_is_named_for_them(tmp_path: Path) -> None:
    assert report_name(tmp_path / "new", [1, 2]) == "splits"  # nothing trained there yet
    for k in (1, 2, 3):
        (tmp_path / f"split{k}").mkdir()
        (tmp_path / f"split{k}" / "run.json").write_text("{}")
    (tmp_path / "split4").mkdir()  # no run.json: not a split run
    (tmp_path / "splits-x").mkdir()
    assert report_name(tmp_path, [3, 1, 2]) == "splits"
    assert report_name(tmp_path, [2, 1]) == "splits-1-2"
    assert report_name(tmp_path, [3]) == "splits-3"
