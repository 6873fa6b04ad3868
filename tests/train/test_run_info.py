"""run.json is one typed record (RunInfo): what is written reads back equal, a wrong type is a
one-line RunError naming the file and the key, keys of a newer harkit are ignored, and the
run.json of format 1 still reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harkit import __version__
from harkit.data.datasets import DatasetConfig
from harkit.flow.extract import FlowConfig
from harkit.train import train
from harkit.train.run import FORMAT_VERSION, RunError, RunPaths, read_run_info, write_run_info
from harkit.train.run_info import (
    DatasetRecord,
    ExportedCheckpoint,
    RunInfo,
    SplitCounts,
    SplitGroups,
    TrainClips,
    VideoFingerprint,
)
from tests.helpers.training import recipe_dim, small_recipe


def _full_info(root: Path) -> RunInfo:
    """Every field set, nested records included."""
    return RunInfo(
        dataset=DatasetRecord(
            name="ucf101",
            kind="ucf101",
            root=str(root),
            split=2,
            group_column=None,
            allow_leakage=False,
        ),
        dataset_config=DatasetConfig(root=root, kind="ucf101", split=2),
        counts=SplitCounts(train=9, val=2, test=4),
        groups=SplitGroups(train=["g01", "g02"], val=["g03"], test=["g04"]),
        train_clips=TrainClips(frames=120.0, fps=25.0, videos=8),
        validation="validation: 1 of 3 training groups",
        leakage="checked, no group on two sides (train/val/test)",
        store=str(root / "store"),
        videos=VideoFingerprint(count=15, fingerprint="0123456789abcdef"),
        recipe="fusion-gru",
        mode="features",
        num_classes=3,
        feature_dims=[512, 256],
        parameters=1234,
        trainable_parameters=1000,
        monitor="val/acc",
        exported=ExportedCheckpoint(
            checkpoint="checkpoints/best.ckpt",
            epoch=2,
            epoch_index=1,
            reason="best val/acc at epoch 2 of 3",
        ),
        best_epoch=2,
        best_score=0.75,
        epochs_run=3,
        global_step=12,
        devices="auto",
        num_nodes=1,
        precision="32-true",
        skipped_videos=1,
        flow=FlowConfig(method="farneback", size=128),
        started="2025-01-01T00:00:00+00:00",
        finished="2025-01-01T00:10:00+00:00",
        resumed=True,
    )


def _write(tmp_path: Path, data: dict[str, Any]) -> RunPaths:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir(exist_ok=True)
    paths.info.write_text(json.dumps(data), encoding="utf-8")
    return paths


def test_what_is_written_reads_back_equal(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    info = _full_info(tmp_path / "data")
    write_run_info(paths, info)
    assert read_run_info(paths.root) == info
    on_disk = json.loads(paths.info.read_text(encoding="utf-8"))
    assert list(on_disk)[:2] == ["format_version", "harkit_version"]  # first, for the reader
    assert (on_disk["format_version"], on_disk["harkit_version"]) == (FORMAT_VERSION, __version__)
    assert on_disk["exported"]["epoch_index"] == 1 and on_disk["dataset_config"]["split"] == 2


def test_data_without_numbered_splits_records_no_split_in_its_config(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    csv = tmp_path / "videos.csv"
    info = RunInfo(
        dataset=DatasetRecord(name="videos", kind="csv", root=str(csv), split=None),
        dataset_config=DatasetConfig(root=csv),
    )
    write_run_info(paths, info)
    on_disk = json.loads(paths.info.read_text(encoding="utf-8"))
    assert on_disk["dataset"]["split"] is None and "split" not in on_disk["dataset_config"]
    assert read_run_info(paths.root).dataset_config == DatasetConfig(root=csv)


def test_train_returns_the_run_json_it_wrote(toy, tmp_path: Path) -> None:
    recipe = small_recipe("optim.epochs=1")
    result = train(recipe, toy(recipe_dim(recipe)), tmp_path / "run", progress=False)
    assert result.run_dir == tmp_path / "run"
    assert result.info is not None and read_run_info(result.run_dir) == result.info
    assert result.info.dataset == DatasetRecord(name="toy", split=1)  # the data's own record


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("epochs_run", "five", "epochs_run"),
        ("counts", {"train": "many", "val": 0, "test": 1}, "counts.train"),
        ("counts", {"train": 1, "val": 0}, "counts.test"),
        ("exported", {"checkpoint": ["best"], "epoch": 1}, "exported.checkpoint"),
        ("dataset_config", {"root": ["x"], "kind": "os.system"}, "dataset_config.root"),
        ("store", 5, "store"),
        ("flow", {"method": "no-such-flow"}, "flow.method"),
        ("groups", "g01", "groups"),
    ],
)
def test_a_wrong_type_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, key: str, value: Any, named: str
) -> None:
    good = _full_info(tmp_path / "data").model_dump(mode="json")
    paths = _write(tmp_path, {**good, key: value})
    with pytest.raises(RunError) as caught:
        read_run_info(paths.root)
    message = str(caught.value)
    assert message.startswith(f"{paths.info}: ") and "\n" not in message, message
    assert f"key '{named}'" in message, message


def test_keys_of_a_newer_harkit_are_ignored(tmp_path: Path) -> None:
    info = _full_info(tmp_path / "data")
    data = info.model_dump(mode="json")
    data["energy_kwh"] = 1.5
    data["exported"]["sha256"] = "ab" * 32
    data["flow"]["gpu_tiles"] = 4  # flow_config.json of a newer `harkit flow`
    paths = _write(tmp_path, data)
    assert read_run_info(paths.root) == info


def test_a_format_1_run_json_still_reads(tmp_path: Path) -> None:
    """As an older harkit wrote it: no epoch_index (``epoch`` 0-based), a ``best_val_acc``
    since dropped, none of the keys added later."""
    paths = _write(
        tmp_path,
        {
            "format_version": 1,
            "harkit_version": "0.3.0",
            "recipe": "fusion-gru",
            "mode": "features",
            "num_classes": 2,
            "feature_dims": [64],
            "dataset": {"name": "toy", "split": 1},
            "counts": {"train": 8, "val": 2, "test": 4},
            "exported": {"checkpoint": "checkpoints/best.ckpt", "epoch": 0, "reason": "best"},
            "best_epoch": 0,
            "best_score": 0.5,
            "best_val_acc": 0.5,
            "epochs_run": 2,
            "global_step": 4,
            "devices": 1,
            "num_nodes": 1,
            "precision": "32-true",
            "skipped_videos": 0,
            "started": "t0",
            "finished": "t1",
            "resumed": False,
        },
    )
    info = read_run_info(paths.root)
    assert (info.format_version, info.harkit_version) == (1, "0.3.0")
    assert info.exported == ExportedCheckpoint(
        checkpoint="checkpoints/best.ckpt", epoch=0, reason="best"
    )
    assert info.counts == SplitCounts(train=8, val=2, test=4) and info.videos is None
    assert info.train_clips is None and info.flow is None and info.dataset_config is None


@pytest.mark.parametrize("version", [None, 0, 3, "2"])
def test_an_unreadable_format_version_is_refused(tmp_path: Path, version: Any) -> None:
    paths = _write(tmp_path, {"format_version": version, "harkit_version": "9.9"})
    with pytest.raises(RunError, match=rf"run format {version!r} written by harkit 9\.9"):
        read_run_info(paths.root)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_epochs": -1}, "argument 'max_epochs': input should be greater than or equal to 1"),
        ({"max_epochs": True}, "argument 'max_epochs'"),
        ({"num_nodes": 0}, "argument 'num_nodes': input should be greater than or equal to 1"),
        ({"progress": "no"}, "argument 'progress': input should be a valid boolean"),
    ],
)
def test_train_refuses_bad_options_before_any_work(toy, tmp_path: Path, options, named) -> None:
    """max_epochs=-1 is Lightning's 'train forever': refused in one line, nothing written."""
    from harkit.config import ConfigError

    recipe = small_recipe("optim.epochs=1")
    with pytest.raises(ConfigError, match=named):
        train(recipe, toy(recipe_dim(recipe)), tmp_path / "run", **{"progress": False, **options})
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_is_a_file_is_one_line(toy, tmp_path: Path) -> None:
    """It was a FileExistsError traceback naming the file."""
    recipe = small_recipe("optim.epochs=1")
    taken = tmp_path / "manifest.csv"
    taken.write_text("path,label\n")
    for run in (taken, taken / "run"):
        with pytest.raises(RunError, match=r"manifest.csv is a file; a run folder needs a folder"):
            train(recipe, toy(recipe_dim(recipe)), run, progress=False)
    assert taken.read_text() == "path,label\n"


@pytest.mark.parametrize("value", ["2", True, 3])
def test_num_classes_must_agree_with_classes_json(toy, tmp_path: Path, value: Any) -> None:
    """A run.json edited to another class count, or to a string or a bool, was accepted."""
    from harkit.train.run import load_run

    recipe = small_recipe("optim.epochs=1")
    run = tmp_path / "run"
    train(recipe, toy(recipe_dim(recipe)), run, progress=False)
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    (run / "run.json").write_text(json.dumps({**data, "num_classes": value}), encoding="utf-8")
    with pytest.raises(RunError, match=r"run.json.*num_classes"):
        load_run(run)
