"""Training behaviour: overfitting, run folder round trip, resume, order sensitivity, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from harkit.config import ConfigError
from harkit.data.datasets import DatasetConfig, DatasetError
from harkit.experiments import evaluate_run
from harkit.models.builder import build_model
from harkit.models.recipe import load_recipe
from harkit.train import RunError, TrainData, load_run, train
from harkit.train.data import carve_validation
from harkit.train.run import FORMAT_VERSION, RunPaths, offline_recipe
from tests.helpers.training import recipe_dim, small_recipe

DIM = 12


def test_tiny_batch_overfits_to_100_percent(toy, tmp_path: Path) -> None:
    recipe = small_recipe("optim.epochs=40", "optim.val_fraction=0")
    data = toy(recipe_dim(recipe), n_train=8, n_val=0, n_test=4)
    data = TrainData(data.train, None, data.train, data.classes, data.info)
    info = train(recipe, data, tmp_path / "run", progress=False).info
    assert info.monitor == "train/acc" and info.best_score is None
    assert info.exported.reason == "last epoch: no validation"
    result = evaluate_run(tmp_path / "run", data.train)
    assert result.clip.top1 == 1.0


def test_run_folder_round_trip_gives_identical_outputs(toy, tmp_path: Path) -> None:
    recipe = small_recipe()
    data = toy(recipe_dim(recipe))
    train(recipe, data, tmp_path / "run", progress=False)
    paths = RunPaths(tmp_path / "run")
    for f in (
        paths.recipe,
        paths.classes,
        paths.weights,
        paths.info,
        paths.skipped,
        paths.best_ckpt,
        paths.last_ckpt,
    ):
        assert f.is_file(), f
    assert (paths.logs / "csv").is_dir() and (paths.logs / "tensorboard").is_dir()
    info = json.loads(paths.info.read_text())
    assert info["format_version"] == FORMAT_VERSION == 2 and info["num_classes"] == 2
    assert info["best_epoch"] in (1, 2) and 0 <= info["best_score"] <= 1  # from 1

    loaded_recipe, classes, model = load_run(paths.root)
    assert classes == ["forward", "backward"] and loaded_recipe == recipe
    # The Lightning best checkpoint and the safetensors file hold the same weights.
    ckpt = torch.load(paths.best_ckpt, map_location="cpu", weights_only=True)
    reference = build_model(offline_recipe(recipe), 2)
    reference.load_state_dict({k[6:]: v for k, v in ckpt["state_dict"].items()})
    reference.eval()
    x, lengths = torch.randn(4, 7, recipe_dim(recipe)), torch.tensor([7, 5, 3, 1])
    with torch.no_grad():
        assert torch.equal(model(x, lengths), reference(x, lengths))
        _, _, again = load_run(paths.root)
        assert torch.equal(again(x, lengths), model(x, lengths))


def test_load_run_errors(toy, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        load_run(tmp_path / "missing")
    recipe = small_recipe("optim.epochs=1")
    train(recipe, toy(recipe_dim(recipe)), tmp_path / "run", progress=False)
    paths = RunPaths(tmp_path / "run")
    info = json.loads(paths.info.read_text())
    paths.info.write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(RunError, match="format 99"):
        load_run(paths.root)
    paths.info.write_text(json.dumps(info))
    paths.weights.unlink()
    with pytest.raises(RunError, match=r"model\.safetensors is missing"):
        load_run(paths.root)
    with pytest.raises(RunError, match="already holds a run"):
        train(recipe, toy(recipe_dim(recipe)), paths.root, progress=False)


class _Capture(L.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step = trainer.global_step
        self.epoch = trainer.current_epoch
        self.optimizer = copy.deepcopy(trainer.optimizers[0].state_dict())  # live tensors


def test_resume_continues_from_same_step_and_optimizer_state(toy, tmp_path: Path) -> None:
    recipe = small_recipe("optim.epochs=1", "optim.scheduler=step", "optim.step_size=1")
    data = toy(recipe_dim(recipe))
    first = train(recipe, data, tmp_path / "run", progress=False).info
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    capture = _Capture()
    second = train(
        recipe,
        data,
        tmp_path / "run",
        resume=True,
        max_epochs=2,
        progress=False,
        callbacks=[capture],
    ).info
    assert capture.step == first.global_step == ckpt["global_step"] == 4
    assert capture.epoch == 1
    saved = ckpt["optimizer_states"][0]
    assert capture.optimizer["param_groups"][0]["lr"] == saved["param_groups"][0]["lr"]
    for key, state in saved["state"].items():
        assert torch.equal(capture.optimizer["state"][key]["exp_avg"], state["exp_avg"])
        assert capture.optimizer["state"][key]["step"] == state["step"]
    assert second.global_step == 8 and second.resumed
    assert second.started == first.started
    with pytest.raises(RunError, match="nothing to resume"):
        train(recipe, data, tmp_path / "other", resume=True, progress=False)


def test_recurrent_head_beats_mean_pooling_on_time_order(toy, tmp_path: Path) -> None:
    scores = {}
    for head in ("recurrent", "mean"):
        recipe = small_recipe("optim.epochs=15", "optim.val_fraction=0", head=head)
        data = toy(recipe_dim(recipe), n_train=48, n_val=0, n_test=32)
        train(recipe, data, tmp_path / head, progress=False)
        scores[head] = evaluate_run(tmp_path / head, data.test).clip.top1
    assert scores["recurrent"] - scores["mean"] >= 0.30, scores


def test_clear_errors(toy, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_recipe("fusion-gru", ["head.bogus=1"])
    with pytest.raises(ConfigError, match="unknown recipe 'no-such-recipe'"):
        load_recipe("no-such-recipe")
    recipe = small_recipe("optim.epochs=1")
    with pytest.raises(ConfigError, match="feature size mismatch: the data has 7-d"):
        train(recipe, toy(7), tmp_path / "dims", progress=False)
    empty = toy(recipe_dim(recipe))
    empty = TrainData(torch.utils.data.TensorDataset(torch.zeros(0)), None, None, empty.classes)
    with pytest.raises(DatasetError, match="train split is empty"):
        train(recipe, empty, tmp_path / "empty", progress=False)


def test_empty_split_from_a_dataset_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label,split\na.mp4,x,test\nb.mp4,y,test\n")
    recipe = small_recipe("optim.epochs=1", "optim.val_fraction=0")
    with pytest.raises(DatasetError, match="train split is empty"):
        train(
            recipe,
            DatasetConfig(root=tmp_path / "manifest.csv"),
            tmp_path / "run",
            store=tmp_path / "store",
            progress=False,
        )


def test_validation_is_carved_group_aware() -> None:
    from harkit.data.datasets import VideoIndex, VideoItem

    items = [
        VideoItem(Path(f"{c}_a{a}_c{k}.mp4"), c, f"a{a}", "train" if a < 9 else "test")
        for c in ("x", "y")
        for a in range(1, 11)
        for k in range(2)
    ]
    index = carve_validation(VideoIndex("t", items, ["x", "y"]), 0.25, seed=0)
    sides: dict[str, set[str]] = {}
    for item in index:
        sides.setdefault(item.group, set()).add(item.split)
    assert all(len(s) == 1 for s in sides.values())
    assert 0 < sum(item.split == "val" for item in index) < 32
    assert sum(item.split == "test" for item in index) == 8


def test_validation_accuracy_counts_videos_over_uneven_batches(toy) -> None:
    # The epoch's val/acc is correct / total over every video, whatever the batch sizes.
    import lightning as L
    from torch.utils.data import DataLoader

    from harkit.data import collate_clips
    from harkit.train.module import ActionModule

    recipe = small_recipe()
    data = toy(recipe_dim(recipe), n_val=7)
    module = ActionModule(recipe, 2)
    loader = DataLoader(data.val, batch_size=3, collate_fn=collate_clips)  # 3 + 3 + 1
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(module, loader, verbose=False)[0]["val/acc"]
    module.eval()
    with torch.no_grad():
        right = sum(
            int((module(b["video"], b["lengths"]).argmax(1) == b["label"]).sum()) for b in loader
        )
    assert logged == pytest.approx(right / 7)
