"""``harkit train --splits leave-one-group-out`` on a CSV with a person column: one run per
person, the mean ± std, the held-out groups in every output, ``predictions.csv``, and
``harkit evaluate --splits`` over the same folds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harkit.cli.main import main
from harkit.synth import write_video
from tests.helpers.experiments import write_recipes
from tests.helpers.frames import moving_square

PERSONS = ("1", "2", "10")


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """2 classes x 3 persons x 2 clips (a square moving right or left), ``path,label,person``."""
    rows = ["path,label,person"]
    seed = 0
    for person in PERSONS:
        for label, name in enumerate(("right", "left")):
            for clip in (1, 2):
                path = f"{name}/p{person}_{clip}.mp4"
                write_video(tmp_path / "data" / path, moving_square(label, seed), fps=8)
                rows.append(f"{path},{name},{person}")
                seed += 1
    manifest = tmp_path / "data" / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_leave_one_person_out_in_one_command(people: Path, tmp_path: Path, capsys) -> None:
    recipe = write_recipes(tmp_path / "recipes")
    run = tmp_path / "run"
    argv = [
        "train",
        "--recipe",
        str(recipe),
        "--dataset",
        str(people),
        "--store",
        str(tmp_path / "store"),
        "--run",
        str(run),
        "--splits",
        "leave-one-group-out",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    # one line per fold naming its person (natural order: 2 before 10), then the mean
    assert [line.split("): ")[0] + ")" for line in printed[:3]] == [
        "split 1 (held out: 1)",
        "split 2 (held out: 2)",
        "split 3 (held out: 10)",
    ]
    assert printed[3].startswith(
        "tiny-gru: mean top-1 over leave-one-group-out cross-"
        "validation folds 1,2,3 (clip-level, 1 clip per video): "
    )
    summary = json.loads((run / "splits.json").read_text())
    assert summary["held_out"] == {"1": ["1"], "2": ["2"], "3": ["10"]}
    assert summary["num_splits"] == 3
    assert "| Split | Held-out groups |" in (run / "splits.md").read_text()

    for k, person in enumerate(PERSONS, 1):
        info = json.loads((run / f"split{k}" / "run.json").read_text())
        assert info["dataset"]["cross_validation"] == "leave-one-group-out"
        assert info["dataset"]["split"] == k
        assert info["groups"]["test"] == [person]
        assert sorted(info["groups"]["train"] + info["groups"]["val"]) == sorted(
            set(PERSONS) - {person}
        )
        with open(run / f"split{k}" / "report" / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["group"] for r in rows] == [person] * 4
        assert sorted(r["video"] for r in rows) == sorted(
            f"{name}/p{person}_{clip}.mp4" for name in ("right", "left") for clip in (1, 2)
        )
        for r in rows:
            probs = dict(item.split(":") for item in r["top_k"].split(";"))
            assert set(probs) == {"right", "left"}
            assert r["predicted"] == max(probs, key=lambda c: float(probs[c]))
            assert float(r["confidence"]) == pytest.approx(float(probs[r["predicted"]]))
            assert r["correct"] == str(int(r["predicted"] == r["true"]))
        top1 = sum(r["correct"] == "1" for r in rows) / len(rows)
        assert summary["per_split"][str(k)]["top1"] == pytest.approx(top1)

    # evaluate --splits over the same folds gives the same numbers; another scheme is refused
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--splits",
                "leave-one-group-out",
                "--out",
                str(tmp_path / "again"),
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "again" / "splits.json").read_text())
    assert again["per_split"] == summary["per_split"] and again["held_out"] == summary["held_out"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--splits", "3-fold"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "made with leave-one-group-out, not 3-fold" in err
