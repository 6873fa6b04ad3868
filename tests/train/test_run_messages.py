"""What a user is told about a run folder that is not (yet) a finished run: the CLI names its
own flags, an interrupted training says how to resume it, and a ``train --splits`` folder
says to use ``--splits``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import harkit.cli.main as cli_main
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import load_run, train
from harkit.train.run import RunError
from tests.helpers.training import toy_data


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=[8]",
            "head.fc=[]",
            "optim.batch_size=8",
            "optim.epochs=1",
        ],
    )
    run = tmp_path_factory.mktemp("messages") / "run"
    train(recipe, toy_data(sum(feature_dims(recipe))), run, progress=False)
    return run


def test_training_into_a_finished_run_names_the_resume_flag(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        "--recipe",
        str(finished / "recipe.yaml"),
        "--dataset",
        str(tmp_path / "no-data"),
        "--run",
        str(finished),
        "--no-progress",
    ]
    assert cli_main.main(argv) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {finished} already holds a run; pass --resume (Python: resume=True) to "
        "continue it or pick another folder\n"
    )


def test_an_interrupted_run_says_how_to_resume(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "run.json").unlink()  # killed mid-training: last.ckpt written, run.json not yet
    said = (
        f"{run}: training was interrupted (checkpoints/last.ckpt is there, run.json is written "
        f"when it ends); continue it with 'harkit train --recipe {run / 'recipe.yaml'} --dataset "
        f"DATA --run {run} --resume' on the data (and --store) it trained on"
    )
    assert cli_main.main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == f"harkit: error: {said}\n"
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the run is refused first")
    assert cli_main.main(["predict", str(run), str(video)]) == 2
    assert capsys.readouterr().err == f"harkit: error: {said}\n"
    with pytest.raises(RunError) as caught:
        load_run(run)
    assert str(caught.value) == said
    # without a checkpoint either, it is no run at all
    shutil.rmtree(run / "checkpoints")
    assert cli_main.main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {run}: not a harkit run folder (no run.json); train one first\n"
    )
    # a folder named run.json (beside a checkpoint) read as an interrupted training
    (run / "run.json").mkdir()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert cli_main.main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {run / 'run.json'} is not a file; move it away (run.json is written "
        "by training)\n"
    )


def test_a_split_runs_folder_points_to_splits(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "parent"
    for k in (1, 2, 3):
        shutil.copytree(finished, parent / f"split{k}")
    (parent / "splits.md").write_text("# mean\n")
    assert cli_main.main(["evaluate", str(parent)]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {parent}: not a harkit run folder (no run.json); it holds split runs: "
        f"use --splits 1,2,3 (harkit evaluate {parent} --splits 1,2,3), or one of them, e.g. "
        f"{parent / 'split1'}\n"
    )
