"""One indexing pass per command: evaluation looks only at the test videos' features, and the
shortcuts taken on the way (ids without pathlib, realpath per folder) give the same answers."""

from __future__ import annotations

import os
from pathlib import Path

from harkit.data.datasets import DatasetConfig, load_index
from harkit.data.jobs import video_id
from harkit.features import feature_stores_for
from harkit.features.pipeline import video_ids_under
from harkit.models.recipe import load_recipe
from harkit.train.data import _resolved, prepare_data

RECIPE = ["input.sampling.num_frames=4", "optim.val_fraction=0"]


def test_evaluation_prepares_only_the_test_videos(tiny_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe("synthetic-gru", RECIPE)
    config = DatasetConfig(root=tiny_root)
    store = tmp_path / "store"
    full = prepare_data(recipe, config, store=store, progress=False)
    assert full.train is not None and full.test is not None
    (location,) = feature_stores_for(recipe, None, None, store)
    index = load_index(config)
    root = tiny_root
    train_id = video_id(next(i.path for i in index if i.split == "train"), root)
    test_ids = {video_id(i.path, root) for i in index if i.split == "test"}
    features = location.open()
    features.file_for(train_id).write_bytes(b"")  # damaged: only a look at it would notice

    tested = prepare_data(recipe, config, store=store, progress=False, splits=("test",))
    assert tested.train is None and tested.val is None
    assert len(tested.test) == len(test_ids) and set(tested.videos) == {"test"}
    assert tested.info.videos == full.info.videos  # the fingerprint covers every video
    assert tested.videos["test"] == full.videos["test"]
    assert list(location.open().damaged()) == [train_id]  # never looked at, so not redone

    prepare_data(recipe, config, store=store, progress=False)  # training looks at all
    assert location.open().damaged() == {}


def test_ids_and_resolved_paths_match_the_general_rules(tmp_path: Path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "data" / "a" / "v1.avi").write_bytes(b"x")
    (tmp_path / "elsewhere" / "v2.avi").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere" / "v2.avi", tmp_path / "data" / "a" / "link.avi")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "b")
    paths = [
        tmp_path / "data" / "a" / "v1.avi",
        tmp_path / "data" / "a" / "link.avi",  # a linked file
        tmp_path / "data" / "b" / "v2.avi",  # in a linked folder
        tmp_path / "data" / "a" / ".." / "a" / "missing.avi",
        tmp_path / "elsewhere" / "v2.avi",  # outside the root
    ]
    assert _resolved(paths) == [os.path.realpath(p) for p in paths]
    for root in (tmp_path / "data", f"{tmp_path}/data/", tmp_path / "data" / "a", "/"):
        assert video_ids_under(paths, root) == [video_id(p, root) for p in paths]
