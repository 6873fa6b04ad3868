"""Validation carving: a feasible group-aware share is chosen and recorded, never refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from harkit.data.datasets import DatasetConfig, DatasetError, VideoIndex, VideoItem
from harkit.train.data import carve_validation, plan_validation


def index_of(train_groups: int, test_groups: int = 2, clips: int = 2) -> VideoIndex:
    items = [
        VideoItem(Path(f"{c}_a{a}_c{k}.mp4"), c, f"a{a}", "train" if a <= train_groups else "test")
        for c in ("x", "y")
        for a in range(1, train_groups + test_groups + 1)
        for k in range(clips)
    ]
    return VideoIndex("t", items, ["x", "y"])


def sides(index: VideoIndex) -> dict[str | None, set[str | None]]:
    out: dict[str | None, set[str | None]] = {}
    for item in index:
        out.setdefault(item.group, set()).add(item.split)
    return out


def test_too_few_groups_for_the_share_hold_out_one_group() -> None:
    # The issue: 6 actors, 2 for test; 15% asked -> "needs >= 7 groups. Lower val_fraction".
    index, note = plan_validation(index_of(4), 0.15, seed=0)
    assert note == "validation: 1 of 4 training groups (25%, 4 of 16 videos), asked 15%"
    assert all(len(s) == 1 for s in sides(index).values())
    assert len({i.group for i in index.subset("val")}) == 1
    assert len(index.subset("test")) == 8
    # Deterministic for a seed.
    assert plan_validation(index_of(4), 0.15, seed=0)[0].items == index.items
    assert len(carve_validation(index_of(4), 0.05, seed=3).subset("val")) == 4


def test_enough_groups_keep_the_asked_share() -> None:
    index, note = plan_validation(index_of(20), 0.25, seed=0)
    held = {i.group for i in index.subset("val")}
    assert 2 <= len(held) <= 8
    assert note.startswith(f"validation: {len(held)} of 20 training groups (")
    assert note.endswith("asked 25%")
    assert all(len(s) == 1 for s in sides(index).values())


def test_one_training_group_trains_without_validation(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="harkit.train.data"):
        index, note = plan_validation(index_of(1), 0.15, seed=0)
    assert len(index.subset("val")) == 0 and len(index.subset("train")) == 4
    assert note == (
        "validation: none: the 4 training videos are one group, which validation cannot share "
        "with training (asked 15%)"
    )
    assert note in caplog.text


def test_videos_without_groups_count_as_their_own_group() -> None:
    items = [VideoItem(Path(f"v{i}.mp4"), "xy"[i % 2], None, "train") for i in range(5)]
    index, note = plan_validation(VideoIndex("t", items, ["x", "y"]), 0.1, seed=0)
    assert note == "validation: 1 of 5 training videos (20%), asked 10%"
    assert len(index.subset("val")) == 1


def test_run_info_records_validation_split_and_groups(tmp_path: Path) -> None:
    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    rows = [
        f"{c}_{a}_{k}.mp4,{c},{a}"
        for c in "xy"
        for a in ("p1", "p2", "p3", "p4", "p5", "p6")
        for k in range(2)
    ]
    (tmp_path / "m.csv").write_text("path,label,Actor\n" + "\n".join(rows) + "\n")
    recipe = load_recipe("c3d-gru", ["optim.val_fraction=0.15"])  # pixels: nothing decoded yet
    info = prepare_data(recipe, DatasetConfig(root=tmp_path / "m.csv"), progress=False).info
    # 6 actors, 2 of them test (the 20% test split): 15% of 4 actors cannot be group-aware.
    assert info.counts.model_dump() == {"train": 12, "val": 4, "test": 8}
    assert info.validation == "validation: 1 of 4 training groups (25%, 4 of 16 videos), asked 15%"
    assert info.dataset.kind == "csv" and info.dataset.group_column == "Actor"
    assert info.dataset.split is None  # a CSV without cross-validation has no numbered split
    assert info.dataset_config.root == tmp_path / "m.csv"
    assert info.leakage == "checked, no group on two sides (train/val/test)"

    (tmp_path / "n.csv").write_text("path,label\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows))
    info = prepare_data(recipe, DatasetConfig(root=tmp_path / "n.csv"), progress=False).info
    assert info.leakage == "no groups: leakage not checked"


def ungrouped(per_class: dict[str, int], split: str | None = "train") -> VideoIndex:
    items = [
        VideoItem(Path(f"{c}{k}.mp4"), c, None, split)
        for c, n in per_class.items()
        for k in range(n)
    ]
    return VideoIndex("t", items, sorted(per_class))


def test_few_videos_per_class_without_groups_hold_out_one_per_class() -> None:
    # The issue: 9 training videos in 3 classes, no groups, 15% -> sklearn "n_splits=7 cannot
    # be greater than the number of members in each class" traceback.
    index, note = plan_validation(ungrouped({"a": 3, "b": 3, "c": 3}), 0.15, seed=0)
    assert note == (
        "validation: 3 of 9 training videos (33%), asked 15%; no class has the 7 videos a "
        "stratified 15% share needs, so 1 per class"
    )
    assert sorted(i.label for i in index.subset("val")) == ["a", "b", "c"]
    assert sorted(i.label for i in index.subset("train")) == ["a", "a", "b", "b", "c", "c"]
    # A class with a single video: a random share, at least 1 video, never all of them.
    index, note = plan_validation(ungrouped({"a": 3, "b": 3, "c": 3, "d": 1}), 0.1, seed=0)
    assert note == (
        "validation: 1 of 10 training videos (10%), asked 10%; no class has the 10 videos a "
        "stratified 10% share needs, so a random share, not stratified"
    )
    # Grouped, few videos per class, enough groups: whole groups at random, no leak.
    items = [VideoItem(Path(f"{c}{k}.mp4"), c, f"p{c}{k}", "train") for c in "ab" for k in range(4)]
    index, note = plan_validation(VideoIndex("t", items, ["a", "b"]), 0.15, seed=1)
    assert note.startswith("validation: 1 of 8 training groups (12%, 1 of 8 videos), asked 15%; ")
    assert note.endswith("so a random share, not stratified")
    # Too small to hold anything out: no validation, said so.
    index, note = plan_validation(ungrouped({"a": 1}), 0.15, seed=0)
    assert len(index.subset("val")) == 0 and note.startswith("validation: none: ")


def test_test_split_with_few_videos_per_class_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    from harkit.data.splits import group_split

    with caplog.at_level(logging.WARNING, logger="harkit.data.splits"):
        index = group_split(ungrouped({"a": 3, "b": 3, "c": 3}, split=None), 0.2, seed=0)
    assert sorted(i.label for i in index.subset("test")) == ["a", "b", "c"]
    assert (
        "t: test split: no class has the 5 videos a stratified 20% share needs, so 1 per "
        "class" in caplog.text
    )
    items = [VideoItem(Path(f"{c}{k}.mp4"), c, f"p{c}{k}", None) for c in "abc" for k in range(3)]
    index = group_split(VideoIndex("t", items, ["a", "b", "c"]), 0.2, seed=0)
    assert len(index.subset("test")) == 2 and len(index.subset("train")) == 7  # random groups
    items = [VideoItem(Path(f"{c}{k}.mp4"), c, f"p{k}", None) for c in "abc" for k in range(3)]
    with pytest.raises(DatasetError, match=r"3 groups cannot make a 20% group-aware test split"):
        group_split(VideoIndex("t", items, ["a", "b", "c"]), 0.2)


def test_manifest_without_groups_and_few_videos_per_class_trains(tmp_path: Path) -> None:
    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    rows = [f"{c}{k}.mp4,{c},train,{k}" for c in "xyz" for k in range(3)]
    rows += [f"{c}t.mp4,{c},test,9" for c in "xyz"]
    (tmp_path / "m.csv").write_text("path,label,split,actor_id\n" + "\n".join(rows) + "\n")
    recipe = load_recipe("c3d-gru", ["optim.val_fraction=0.15"])  # pixels: nothing decoded yet
    info = prepare_data(recipe, DatasetConfig(root=tmp_path / "m.csv"), progress=False).info
    assert info.counts.model_dump() == {"train": 6, "val": 3, "test": 3}
    assert info.validation.startswith("validation: 3 of 9 training videos (33%), asked 15%; ")


@pytest.mark.parametrize("groups", [2, 3])
def test_two_or_three_training_groups_train_without_validation(
    groups: int, caplog: pytest.LogCaptureFixture
) -> None:
    # GaTech leave-one-person-out: two training people; holding one out left 9 clips (55.6%).
    with caplog.at_level(logging.WARNING, logger="harkit.train.data"):
        index, note = plan_validation(index_of(groups), 0.1, seed=0)
    assert len(index.subset("val")) == 0 and len(index.subset("train")) == 4 * groups
    assert note == (
        f"validation: none: holding out one of only {groups} training groups would take "
        f"{1 / groups:.0%} of the training data (asked 10%; needs >= 4 groups); the last "
        "epoch is exported"
    )
    assert note in caplog.text


def test_a_class_without_training_videos_is_warned_about(tmp_path: Path, caplog) -> None:
    from harkit.models.recipe import load_recipe
    from harkit.train.data import prepare_data

    (tmp_path / "m.csv").write_text(
        "path,label,split\na.mp4,left,train\nb.mp4,left,train\nc.mp4,right,test\n"
    )
    with caplog.at_level(logging.WARNING, logger="harkit.train.data"):
        prepare_data(load_recipe("c3d-gru"), DatasetConfig(root=tmp_path / "m.csv"), progress=False)
    assert "1 class(es) without a training video, the model cannot learn them: right" in caplog.text
