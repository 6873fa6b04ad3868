"""Run folders under concurrency, refused resumes and kill -9: one train per folder (an OS
lock), a refused ``--resume`` leaves every file as it was, a killed run resumes to the weights
of an uninterrupted one, and ``run.json`` reports what actually ran and what was exported."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

import harkit.cli.main as cli_main
from harkit.experiments import evaluate_run
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import TrainData, load_run, train
from harkit.train.run import RunPaths
from harkit.train.run_info import ExportedCheckpoint, RunInfo
from tests.helpers.training import toy_data

REPO = Path(__file__).resolve().parents[2]


def _recipe(*extra: str):
    return load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=[8]",
            "head.fc=[]",
            "optim.batch_size=8",
            "optim.epochs=1",
            *extra,
        ],
    )


def _dim(recipe) -> int:
    return sum(feature_dims(recipe))


def _job(run: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.train.train_job", str(run), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, -9), err[-3000:]
    return proc.returncode


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- one train per run folder ------------------------------------------------------------------


@pytest.mark.slow
def test_second_train_into_a_locked_run_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, release = tmp_path / "run", tmp_path / "release"
    first = _job(run, "--hold", str(release))
    try:
        started = Path(f"{release}.started")
        while not started.exists():  # the first job holds the lock while it trains
            assert first.poll() is None, first.communicate()[1][-3000:]
            time.sleep(0.1)
        recipe = shutil.copy(run / "recipe.yaml", tmp_path / "other.yaml")
        argv = [
            "train",
            "--recipe",
            recipe,
            "--set",
            "head.hidden=[16]",
            "--dataset",
            tmp_path / "no-data",
            "--run",
            run,
            "--no-progress",
        ]
        for extra in ([], ["--resume"]):
            assert cli_main.main([str(a) for a in [*argv, *extra]]) == 2
            err = capsys.readouterr().err
            assert err == (
                f"harkit: error: {run}: another 'harkit train' is writing this run "
                "folder; wait for it to finish or pick another --run folder\n"
            )
        # A DDP replica the launcher started (LOCAL_RANK > 0) does not take the lock: it gets
        # as far as reading the (here missing) dataset.
        with monkeypatch.context() as env:
            env.setenv("LOCAL_RANK", "1")
            assert cli_main.main([str(a) for a in argv]) == 2
        assert "no-data" in capsys.readouterr().err
    finally:
        release.touch()
    assert _wait(first) == 0
    # The folder is the first job's alone, and the lock went with it.
    recipe, _, _ = load_run(run)
    assert recipe.head.hidden == [8]
    second = train(recipe, toy_data(_dim(recipe)), run, resume=True, max_epochs=5, progress=False)
    assert second.info.epochs_run == 5


# -- refused resumes leave the run as it was ---------------------------------------------------


def test_resume_with_a_changed_recipe_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe()
    run = tmp_path / "run"
    train(recipe, toy_data(_dim(recipe)), run, progress=False)
    before = _snapshot(run)
    saved = shutil.copy(run / "recipe.yaml", tmp_path / "recipe.yaml")
    argv = [
        "train",
        "--recipe",
        saved,
        "--set",
        "head.hidden=[16]",
        "--set",
        "optim.lr=0.5",
        "--set",
        "optim.epochs=3",
        "--dataset",
        tmp_path / "no-data",
        "--run",
        run,
        "--resume",
        "--no-progress",
    ]
    assert cli_main.main([str(a) for a in argv]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {run / 'recipe.yaml'}: --resume needs the recipe the run was trained "
        "with; keys that differ (saved -> given): head.hidden: [8] -> [16], optim.lr: 0.001 -> "
        "0.5. Resume without those --set overrides, or train into another --run folder\n"
    )
    assert _snapshot(run) == before
    load_run(run)
    # More epochs alone is how a run is extended: that resume goes ahead.
    longer = _recipe("optim.epochs=2")
    info = train(longer, toy_data(_dim(longer)), run, resume=True, progress=False).info
    assert info.epochs_run == 2 and load_run(run)[0].optim.epochs == 2


# -- kill -9 and resume --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("whole") / "run"
    assert _wait(_job(run)) == 0
    return run


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["batch", "save"])
def test_killed_run_resumes_to_the_uninterrupted_weights(
    where: str, uninterrupted: Path, tmp_path: Path
) -> None:
    # Any point after the first epoch's checkpoint: a batch of a later epoch, or a checkpoint
    # write cut between its temp file and the rename. 4 epochs of 4 batches.
    epoch = random.randint(1, 3)
    point = f"{epoch}:{random.randint(0, 3)}" if where == "batch" else f"{epoch}:save"
    run = tmp_path / "run"
    assert _wait(_job(run, "--kill-at", point)) == -9, point
    assert not (run / "model.safetensors").exists()
    assert _wait(_job(run, "--resume")) == 0, point

    expected, got = (
        load_file(uninterrupted / "model.safetensors"),
        load_file(run / "model.safetensors"),
    )
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), (point, name)
    for ckpt in ("last.ckpt", "best.ckpt"):
        a, b = _state(uninterrupted / "checkpoints" / ckpt), _state(run / "checkpoints" / ckpt)
        assert all(torch.equal(a[k], b[k]) for k in a), (point, ckpt)
    info_a, info_b = (load_run_info(uninterrupted), load_run_info(run))
    for key in ("epochs_run", "global_step", "exported", "best_score"):
        assert getattr(info_a, key) == getattr(info_b, key), (point, key)


def load_run_info(run: Path) -> RunInfo:
    from harkit.train.run import read_run_info

    return read_run_info(run)


# -- what run.json reports -----------------------------------------------------------------------


class _Blank(Dataset):
    """Validation clips that are all zeros, labels alternating: val/acc is 0.5 every epoch, so
    it never improves after epoch 0."""

    def __init__(self, n: int, dim: int) -> None:
        self.n, self.dim = n, dim

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "video": torch.zeros(6, self.dim),
            "mask": torch.ones(6, dtype=torch.bool),
            "label": i % 2,
            "index": i,
        }


def test_run_json_counts_what_ran_and_names_the_exported_checkpoint(tmp_path: Path) -> None:
    recipe = _recipe("optim.epochs=3")
    toy = toy_data(_dim(recipe), n_train=32)
    data = TrainData(toy.train, _Blank(4, _dim(recipe)), toy.test, toy.classes, toy.info)
    info = train(recipe, data, tmp_path / "run", progress=False).info
    # 32 clips at batch 8: 4 steps per epoch, 3 epochs.
    assert info.epochs_run == 3 and info.global_step == 12
    # Epochs count from 1 (val/acc never improves after the first); Lightning's 0-based
    # index is kept as `epoch_index`.
    assert info.best_score == 0.5 and info.best_epoch == 1
    assert info.exported == ExportedCheckpoint(
        checkpoint="checkpoints/best.ckpt",
        epoch=1,
        epoch_index=0,
        reason="best val/acc at epoch 1 of 3",
    )
    paths = RunPaths(tmp_path / "run")
    best = {k.removeprefix("model."): v for k, v in _state(paths.best_ckpt).items()}
    exported = load_file(paths.weights)
    assert all(torch.equal(exported[k], best[k]) for k in exported)


def test_without_validation_the_last_epoch_is_exported(tmp_path: Path) -> None:
    # 8 clips learnt in a few epochs: train/acc reaches 100% long before the last epoch.
    recipe = _recipe("optim.epochs=12", "optim.lr=0.05", "optim.val_fraction=0")
    toy = toy_data(_dim(recipe), n_train=8, n_val=0)
    info = train(recipe, toy, tmp_path / "run", progress=False).info
    assert info.exported == ExportedCheckpoint(
        checkpoint="checkpoints/last.ckpt",
        epoch=12,
        epoch_index=11,
        reason="last epoch: no validation",
    )
    assert info.epochs_run == 12 and info.global_step == 12
    assert info.best_score is None
    paths = RunPaths(tmp_path / "run")
    assert not paths.best_ckpt.exists()
    last = {k.removeprefix("model."): v for k, v in _state(paths.last_ckpt).items()}
    exported = load_file(paths.weights)
    assert all(torch.equal(exported[k], last[k]) for k in exported)


def test_damaged_skip_reports_are_rebuilt(tmp_path: Path) -> None:
    recipe = _recipe()
    data = toy_data(_dim(recipe))
    paths = RunPaths(tmp_path / "run")
    train(recipe, data, paths.root, progress=False)
    paths.skipped.write_text('["not", "a", "report"]')
    info = train(recipe, data, paths.root, resume=True, max_epochs=2, progress=False).info
    assert info.skipped_videos == 0 and paths.skipped.read_text().strip() == "{}"
    (paths.report / "skipped.json").parent.mkdir()
    (paths.report / "skipped.json").write_text('{"a.mp4": ')
    assert evaluate_run(paths.root, data.test).clip.num_samples == len(data.test)
    assert (paths.report / "skipped.json").read_text().strip() == "{}"


def test_a_model_too_large_for_memory_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    # head.hidden=65536 passes validation (sizes up to 65536 are allowed) but its GRU over
    # 1280-d features has 13e9 parameters: refused in one line, before data or run files
    import harkit.train.memory as memory

    monkeypatch.setattr(memory, "_available_memory", lambda: 24 * 2**30)  # this machine's
    run = tmp_path / "run"
    code = cli_main.main(
        [
            "train",
            "--recipe",
            "efficientnet-gru",
            "--dataset",
            str(tmp_path / "data"),
            "--run",
            str(run),
            "--set",
            "head.hidden=65536",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "its model has 13,145,473,283 parameters, about 195.9 GiB to train" in err
    assert "but 24.0 GiB of memory is available" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (run / "recipe.yaml").exists() and not (run / "classes.json").exists()


@pytest.mark.slow
def test_resume_on_other_data_is_refused_before_writing(tmp_path, capsys):
    from harkit.synth import SynthConfig, render_dataset

    config = SynthConfig(
        classes=["blink", "shake"],
        num_actors=3,
        clips_per_actor=1,
        test_actors=1,
        num_frames=12,
        size=64,
    )
    data = render_dataset(tmp_path / "data", config).parent
    more = config.model_copy(update={"num_actors": 4})  # the same classes, more people
    other = render_dataset(tmp_path / "other", more).parent
    run, store = tmp_path / "run", tmp_path / "store"
    base = [
        "train",
        "--recipe",
        "synthetic-gru",
        "--store",
        str(store),
        "--run",
        str(run),
        "--no-progress",
    ]
    assert cli_main.main([*base, "--dataset", str(data), "--set", "optim.epochs=2"]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    code = cli_main.main([*base, "--dataset", str(other), "--set", "optim.epochs=3", "--resume"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{run} was trained on {data} (6 videos); {other} (8 videos) is other data" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # the same data resumes
    assert (
        cli_main.main([*base, "--dataset", str(data), "--set", "optim.epochs=3", "--resume"]) == 0
    )


@pytest.mark.parametrize("inside", ["", "runs/a"])
def test_a_run_inside_a_folder_dataset_is_refused(tmp_path, capsys, inside):
    data = tmp_path / "data"
    (data / "wave").mkdir(parents=True)
    run = data / inside if inside else data
    code = cli_main.main(
        ["train", "--recipe", "synthetic-gru", "--dataset", str(data), "--run", str(run)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"harkit: error: {run}: the run folder is inside the dataset folder {data}, "
        "which is read as '<class>/<video>'; put runs elsewhere (--run)\n"
    )
    assert not (data / "runs").exists() and not (data / ".lock").exists()


@pytest.mark.parametrize(
    "val, error",
    [
        ("0", "no training step ran: every training video was skipped (4 in the train split"),
        ("0.25", "no validation score: every validation video was skipped"),
    ],
)
def test_training_on_only_unreadable_videos_fails_instead_of_saving_an_untrained_model(
    tmp_path, capsys, val, error
):
    rows = ["path,label,split"]
    for k in range(6):
        (tmp_path / f"v{k}.mp4").write_bytes(b"not a video at all")
        rows.append(f"v{k}.mp4,{'ab'[k % 2]},{'test' if k >= 4 else 'train'}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    code = cli_main.main(
        [
            "train",
            "--recipe",
            "synthetic-gru",
            "--dataset",
            str(tmp_path / "m.csv"),
            "--store",
            str(tmp_path / "store"),
            "--run",
            str(run),
            "--set",
            "optim.epochs=2",
            "--set",
            f"optim.val_fraction={val}",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{run}: {error}" in err
    assert not (run / "model.safetensors").exists()
