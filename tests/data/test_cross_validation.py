"""Cross-validation by group on data without official splits (``--splits
leave-one-group-out`` / ``K-fold``): which groups each fold holds out, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.cli.args import split_list
from harkit.data.datasets import DatasetConfig, DatasetError
from harkit.data.splits import build_index, cross_validation_folds


def manifest(path: Path, persons: list[str], *, split_column: bool = False) -> Path:
    """Two classes x two clips per person; with ``split_column`` a split the folds replace."""
    rows = ["path,label,person" + (",split" if split_column else "")]
    for p in persons:
        for label in ("wave", "clap"):
            for clip in (1, 2):
                rows.append(
                    f"{label}_{p}_{clip}.mp4,{label},{p}" + (",train" if split_column else "")
                )
    path.write_text("\n".join(rows) + "\n")
    return path


def test_leave_one_group_out_holds_out_each_group_once_in_natural_order(tmp_path: Path) -> None:
    csv = manifest(tmp_path / "m.csv", ["10", "2", "1"], split_column=True)
    config = DatasetConfig(root=csv, cross_validation="leave-one-group-out")
    assert cross_validation_folds(config) == [["1"], ["2"], ["10"]]  # 2 before 10
    for k, person in enumerate(["1", "2", "10"], 1):
        index = build_index(config.model_copy(update={"split": k}))
        test = index.subset("test")
        # the fold replaces the manifest's split column (every row said train)
        assert {item.group for item in test} == {person} and len(test) == 4
        assert {item.group for item in index.subset("train")} == {"1", "2", "10"} - {person}


def test_k_fold_partitions_the_groups_stratified(tmp_path: Path) -> None:
    csv = manifest(tmp_path / "m.csv", [f"p{i}" for i in range(6)])
    config = DatasetConfig(root=csv, cross_validation=3, seed=1)
    folds = cross_validation_folds(config)
    assert len(folds) == 3 and all(len(fold) == 2 for fold in folds)
    assert sorted(g for fold in folds for g in fold) == [f"p{i}" for i in range(6)]
    for k in (1, 2, 3):
        test = build_index(config.model_copy(update={"split": k})).subset("test")
        assert {item.group for item in test} == set(folds[k - 1])
        assert sorted(test.class_counts().values()) == [4, 4]  # both classes in every fold


def test_k_fold_without_groups_folds_videos(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("path,label\n" + "".join(f"{c}{i}.mp4,{c}\n" for c in "ab" for i in range(4)))
    config = DatasetConfig(root=csv, cross_validation=2)
    assert cross_validation_folds(config) == [[], []]  # videos without a group are not named
    sizes = [
        len(build_index(config.model_copy(update={"split": k})).subset("test")) for k in (1, 2)
    ]
    assert sizes == [4, 4]


@pytest.mark.parametrize(
    ("persons", "cv", "split", "message"),
    [
        (["1"], "leave-one-group-out", 1, r"needs >= 2 groups, found 1"),
        (["1", "2", "3"], 4, 1, r"3 groups cannot make 4-fold cross-validation"),
        (["1", "2", "3"], "leave-one-group-out", 4, r"split 4: leave-one-group-out has 3 folds"),
    ],
)
def test_refusals_name_the_numbers(tmp_path: Path, persons, cv, split, message) -> None:
    config = DatasetConfig(
        root=manifest(tmp_path / "m.csv", persons), cross_validation=cv, split=split
    )
    with pytest.raises(DatasetError, match=message):
        build_index(config)


def test_leave_one_group_out_needs_a_group_for_every_video(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("path,label\na.mp4,x\nb.mp4,y\n")
    with pytest.raises(DatasetError, match=r"needs a group for every video; 2 have none"):
        cross_validation_folds(DatasetConfig(root=csv, cross_validation="leave-one-group-out"))


def test_official_benchmarks_keep_their_splits(tmp_path: Path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "classInd.txt").write_text("1 A\n")
    (tmp_path / "ann" / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 1\n")
    config = DatasetConfig(root=tmp_path, annotations=tmp_path / "ann", cross_validation=5)
    with pytest.raises(DatasetError, match=r"ucf101 has official splits \(1-3\); 5-fold"):
        build_index(config)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,3", [1, 3]), ("leave-one-group-out", "leave-one-group-out"), ("5-fold", 5)],
)
def test_splits_argument(text: str, value) -> None:
    assert split_list(text) == value


@pytest.mark.parametrize("text", ["1-fold", "101-fold", "k-fold", "leave-one-out", "1,1"])
def test_splits_argument_refuses(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="leave-one-group-out, or K-fold"):
        split_list(text)
