"""``harkit train / evaluate / ablate / info`` through ``harkit.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harkit.cli.main as cli_main
from harkit.synth import SynthConfig, render_dataset


def test_info_lists_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["info", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "fusion-gru" in names and "ablations/c3d-only" in names


def test_info_prints_seed_003_layer_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["info", "--recipe", "c3d-gru", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    # Seed 003's table for 20x100x100x3 and 4 classes: convs, GRU(128) and dense.
    for count in ("1,312", "13,856", "55,360", "3,588,864", "516"):
        assert count in out
    assert "total" in out and "trainable" in out and "3,659,908" in out


def test_info_builds_offline_with_imagenet_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    # corehar asks for ImageNet ResNet152; info must not download (weights forced to none).
    args = [
        "info",
        "--recipe",
        "corehar",
        "--num-classes",
        "101",
        "--set",
        "network.encoder=resnet18",
    ]
    assert cli_main.main(args) == 0
    assert "encoder" in capsys.readouterr().out


def test_bad_input_gives_exit_code_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main.main(["info", "--recipe", "nope"]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert cli_main.main(["info", "--recipe", "c3d-gru", "--set", "network.bogus=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert cli_main.main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert cli_main.main(["ablate", "--grid", "head.cell=gru", "--dataset", str(tmp_path)]) == 2
    assert "--grid needs --recipe" in capsys.readouterr().err


@pytest.mark.slow
def test_train_evaluate_ablate_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = render_dataset(
        tmp_path / "videos",
        SynthConfig(
            classes=["move_right", "move_left"],
            num_actors=3,
            clips_per_actor=1,
            num_frames=8,
            size=32,
            test_actors=1,
        ),
    )
    tiny = [
        "--set",
        "input.sampling.num_frames=8",
        "--set",
        "network.size=16",
        "--set",
        "network.units=8",
        "--set",
        "optim.epochs=1",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.val_fraction=0",
    ]
    run = tmp_path / "run"
    base = ["--recipe", "c3d-gru", "--dataset", str(manifest), "--no-progress", *tiny]
    assert cli_main.main(["train", *base, "--run", str(run)]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["recipe"] == "c3d-gru" and (run / "model.safetensors").is_file()
    assert (
        cli_main.main(["train", *base, "--run", str(run), "--resume", "--set", "optim.epochs=2"])
        == 0
    )
    assert json.loads((run / "run.json").read_text())["global_step"] == 2

    assert cli_main.main(["evaluate", str(run), "--clips", "2"]) == 0
    assert "video-level top-1" in capsys.readouterr().out
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["video_level"]["num_samples"] == 2
    assert "Leakage check: checked" in (run / "report" / "report.md").read_text()

    out = tmp_path / "abl"
    assert (
        cli_main.main(
            [
                "ablate",
                "--recipe",
                "c3d-gru",
                "--grid",
                "network.rnn=gru,lstm",
                "--dataset",
                str(manifest),
                "--out",
                str(out),
                "--no-progress",
                *tiny,
            ]
        )
        == 0
    )
    csv_rows = (out / "ablation.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and csv_rows[1].startswith("network.rnn=gru")
