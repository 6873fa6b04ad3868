"""``--resume`` and epochs: a resume asking for fewer epochs than the run already trained is
refused in one line naming both numbers, before anything in the run folder is written; the
CLI without ``--set optim.epochs`` resumes to the epochs the run recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import harkit.cli.main as cli_main
import harkit.train.trainer as trainer_mod
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import train
from harkit.train.run import RunError
from tests.helpers.training import toy_data

SETS = [
    "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
    "head.hidden=[8]",
    "head.fc=[]",
    "optim.batch_size=8",
]


def _recipe(*extra: str):
    return load_recipe("fusion-gru", [*SETS, *extra])


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _argv(run: Path, tmp_path: Path, *sets: str) -> list[str]:
    argv = ["train", "--recipe", "fusion-gru"]
    for item in [*SETS, *sets]:
        argv += ["--set", item]
    return [
        *argv,
        "--dataset",
        str(tmp_path / "no-data"),
        "--run",
        str(run),
        "--resume",
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained with optim.epochs=3 (the recipe's default is 30)."""
    recipe = _recipe("optim.epochs=3")
    run = tmp_path_factory.mktemp("epochs") / "run"
    info = train(recipe, toy_data(sum(feature_dims(recipe))), run, progress=False).info
    assert info.epochs_run == 3
    return run


def test_cli_resume_with_fewer_epochs_is_refused_before_writing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished)
    assert cli_main.main(_argv(finished, tmp_path, "optim.epochs=2")) == 2
    err = capsys.readouterr().err
    assert err == (
        f"harkit: error: {finished}: cannot resume with optim.epochs=2: the run has already "
        "trained 3 epochs (checkpoints/last.ckpt; its recipe.yaml says optim.epochs=3); to "
        "extend it set optim.epochs to 3 or more (--set optim.epochs=N)\n"
    )
    assert _snapshot(finished) == before


def test_python_resume_with_fewer_epochs_is_refused_before_writing(finished: Path) -> None:
    before = _snapshot(finished)
    recipe = _recipe()  # optim.epochs left at the recipe's default, 30 ... and max_epochs=1
    with pytest.raises(RunError, match=r"max_epochs=1: the run has already trained 3 epochs"):
        train(
            recipe,
            toy_data(sum(feature_dims(recipe))),
            finished,
            resume=True,
            max_epochs=1,
            progress=False,
        )
    recipe = _recipe("optim.epochs=1")
    with pytest.raises(RunError, match=r"optim.epochs=1: the run has already trained 3 epochs"):
        train(recipe, toy_data(sum(feature_dims(recipe))), finished, resume=True, progress=False)
    assert _snapshot(finished) == before


def test_cli_resume_without_epochs_uses_the_recorded_ones(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}

    def fake_train(recipe, config, run_dir, **kwargs):
        seen["epochs"], seen["resume"] = recipe.optim.epochs, kwargs["resume"]
        return trainer_mod.TrainResult(Path(run_dir), None)

    monkeypatch.setattr(trainer_mod, "train", fake_train)
    assert cli_main.main(_argv(finished, tmp_path)) == 0
    assert seen == {"epochs": 3, "resume": True}  # not the recipe's default 30
    assert cli_main.main(_argv(finished, tmp_path, "optim.epochs=7")) == 0
    assert seen["epochs"] == 7  # an explicit --set extends the run


def test_python_fit_resume_without_epochs_uses_the_recorded_ones(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harkit

    seen = {}

    def fake_train(recipe, config, run_dir, **kwargs):
        seen["epochs"] = recipe.optim.epochs
        return trainer_mod.TrainResult(Path(run_dir), None)

    monkeypatch.setattr(trainer_mod, "train", fake_train)
    harkit.fit("fusion-gru", tmp_path, finished, overrides=SETS, resume=True)
    assert seen["epochs"] == 3  # not the recipe's default 30
    harkit.fit("fusion-gru", tmp_path, finished, overrides=[*SETS, "optim.epochs=7"], resume=True)
    assert seen["epochs"] == 7


def test_resume_of_a_finished_run_to_its_own_epochs_trains_no_further(finished: Path) -> None:
    before = json.loads((finished / "run.json").read_text())
    weights = load_file(finished / "model.safetensors")
    recipe = _recipe("optim.epochs=3")
    info = train(
        recipe, toy_data(sum(feature_dims(recipe))), finished, resume=True, progress=False
    ).info
    assert info.epochs_run == 3 and info.resumed is True
    assert info.global_step == before["global_step"]  # not one step more
    assert info.exported.model_dump() == before["exported"]
    after = load_file(finished / "model.safetensors")
    assert all(torch.equal(weights[k], after[k]) for k in weights)
