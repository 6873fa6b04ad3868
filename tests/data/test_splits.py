from collections import Counter
from pathlib import Path

import pytest

from harkit.data.datasets import DatasetError, VideoIndex, VideoItem
from harkit.data.splits import LeakageError, assert_no_leakage, group_split, leaked_groups


def index_with_groups(classes=4, groups=10, clips=3):
    items = [
        VideoItem(Path(f"{c}/{c}_g{g:02d}_c{k}.mp4"), f"class{c}", f"g{g:02d}")
        for c in range(classes)
        for g in range(groups)
        for k in range(clips)
    ]
    return VideoIndex("toy", items, [f"class{c}" for c in range(classes)])


def test_group_split_keeps_groups_whole_and_classes_balanced():
    index = group_split(index_with_groups(), test_fraction=0.2, seed=0)
    assert leaked_groups(index) == []
    test = index.subset("test")
    assert 0.1 < len(test) / len(index) < 0.3
    assert set(Counter(i.label for i in test)) == set(index.classes)
    again = group_split(index_with_groups(), test_fraction=0.2, seed=0)
    assert [i.split for i in again] == [i.split for i in index]


def test_group_split_needs_enough_groups():
    with pytest.raises(DatasetError, match="groups cannot make"):
        group_split(index_with_groups(groups=2, classes=1), test_fraction=0.2)


def test_a_test_share_over_half_is_honoured_or_refused():
    """k-fold takes one fold of at least 2 as test: 0.8 gave a 50% test split without a word."""
    index = group_split(index_with_groups(), test_fraction=0.8, seed=0)
    assert leaked_groups(index) == []
    assert 0.7 < len(index.subset("test")) / len(index) < 0.9
    with pytest.raises(DatasetError, match=r"2 groups cannot make a 90% .* \(needs >= 10 groups\)"):
        group_split(index_with_groups(groups=2, classes=1), test_fraction=0.9)


def test_leakage_error_lists_the_groups():
    index = index_with_groups(classes=1, groups=3, clips=2)
    index = index.with_splits(["train", "test", "train", "train", "test", "test"])
    assert leaked_groups(index) == ["g00"]
    with pytest.raises(LeakageError, match=r"1 group\(s\) appear in both train and test: g00"):
        assert_no_leakage(index)
    assert_no_leakage(index, allow=True)


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any level (function-level imports included)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_splits_import_datasets_never_the_reverse():
    import harkit.data.datasets as datasets
    import harkit.data.splits as splits

    assert "harkit.data.splits" not in _imported_modules(Path(datasets.__file__))
    assert "harkit.data.datasets" in _imported_modules(Path(splits.__file__))
    # the pieces moved with the direction: loading holds UCF50's fold, splitting builds the index
    assert datasets.leave_one_group_out.__module__ == "harkit.data.datasets"
    assert splits.build_index.__module__ == "harkit.data.splits"


def test_a_test_share_off_the_asked_one_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """0.4 and 0.6 both gave 50% (one of round(2.5) = 2 folds) without a word."""
    with caplog.at_level("WARNING", logger="harkit.data.splits"):
        index = group_split(index_with_groups(groups=40), test_fraction=0.4)
    share = len(index.subset("test")) / len(index)
    assert share == 0.5
    assert caplog.messages == [
        "toy: the test split holds 50% of the videos, not the 40% asked: it is one of 2 "
        "stratified folds of whole groups"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="harkit.data.splits"):
        group_split(index_with_groups(groups=40), test_fraction=0.2)
    assert caplog.messages == []
