"""``harkit reproduce`` end to end on a tiny UCF101 tree in the official layout."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from harkit.cli.main import main
from harkit.experiments.reproduce import find_ablations, split_state
from tests.helpers.experiments import write_recipes


def _args(recipe, videos, ann, out, *extra):
    return [
        "reproduce",
        str(recipe),
        "--dataset",
        str(videos),
        "--kind",
        "ucf101",
        "--annotations",
        str(ann),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_finds_the_ablations_whose_base_is_the_recipe(tmp_path):
    recipe = write_recipes(tmp_path)
    assert [p.name for p in find_ablations(recipe)] == ["tiny-lstm.yaml"]
    assert [p.stem for p in find_ablations("fusion-gru")] == [
        "fusion-gru-googlenet",
        "fusion-gru-irv2",
    ]


def test_refuses_data_without_official_splits_and_unknown_splits(ucf, tmp_path, capsys):
    videos, ann, recipe = ucf
    assert main(_args(recipe, videos, ann, tmp_path / "o", "--splits", "4")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ucf101 has official splits 1-3" in err
    args = [
        "reproduce",
        str(recipe),
        "--dataset",
        str(videos),
        "--kind",
        "folder",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "official splits" in err
    assert not (tmp_path / "o" / "tiny-gru").exists()


@pytest.mark.slow
def test_reproduce_table_and_resume(ucf, tmp_path, capsys):
    videos, ann, recipe = ucf
    out = tmp_path / "out"
    assert main(_args(recipe, videos, ann, out, "--ablations")) == 0
    printed = capsys.readouterr().out
    assert "tiny-gru: harkit" in printed and "paper 97.97%" in printed

    table = json.loads((out / "reproduce.json").read_text())
    assert table["splits"] == [1, 2, 3] and table["dataset"]["kind"] == "ucf101"
    assert table["extraction"]["videos"] == 16 and table["extraction"]["extracted"] == 16
    base, ablation = table["rows"]
    assert (base["recipe"], ablation["recipe"]) == ("tiny-gru", "tiny-lstm")
    for row in (base, ablation):
        per_split = [row[f"split{k}_top1"] for k in (1, 2, 3)]
        assert all(0.0 <= v <= 1.0 for v in per_split)
        assert row["top1_mean"] == pytest.approx(np.mean(per_split))
        assert row["top1_std"] == pytest.approx(np.std(per_split))
        assert row["splits_done"] == 3
        for k in (1, 2, 3):
            report = out / row[f"split{k}_report"]
            assert report.is_file()
            metrics = json.loads((report.parent / "metrics.json").read_text())
            assert metrics["metrics"]["top1"] == pytest.approx(row[f"split{k}_top1"])
        assert (out / row["recipe"] / "splits.md").is_file()
    assert base["paper_top1"] == pytest.approx(0.9797) and base["paper_comparable"]
    assert ablation["paper_top1"] == pytest.approx(0.9036)  # its own number, split 1 only
    assert ablation["paper_source"] == "ucf101_split1_top1"

    md = (out / "reproduce.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("| tiny-gru "))
    assert "| 97.97 |" in line
    assert f"{100 * base['top1_mean']:.2f} ± {100 * base['top1_std']:.2f}" in line
    for k in (1, 2, 3):
        assert f"({base[f'split{k}_report']})" in line
    assert "90.36 (split 1)" in md and "overridden" not in md
    with (out / "reproduce.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["recipe"] for r in rows] == ["tiny-gru", "tiny-lstm"]
    assert float(rows[0]["top1_mean"]) == pytest.approx(base["top1_mean"])

    # Interrupted: split 3's training finished its checkpoint but not its export and report.
    split3 = out / "tiny-gru" / "split3"
    (split3 / "model.safetensors").unlink()
    shutil.rmtree(split3 / "report")
    assert split_state(split3) == "interrupted"
    # Killed while evaluating: the ablation's split 2 has its model but no report.
    lstm2 = out / "tiny-lstm" / "split2"
    shutil.rmtree(lstm2 / "report")
    assert split_state(lstm2) == "trained"
    kept = sorted(p for p in out.rglob("*") if p.name in ("model.safetensors", "report.md"))
    assert len(kept) == 9
    before = {p: p.stat().st_mtime_ns for p in kept}
    assert main(_args(recipe, videos, ann, out, "--ablations")) == 0
    capsys.readouterr()
    assert {p: p.stat().st_mtime_ns for p in kept} == before  # finished splits untouched
    assert split_state(split3) == "finished"
    assert json.loads((split3 / "run.json").read_text())["resumed"] is True
    again = json.loads((out / "reproduce.json").read_text())
    assert again["extraction"]["extracted"] == 0
    base = again["rows"][0]
    assert [base[f"split{k}_status"] for k in (1, 2, 3)] == ["already done"] * 2 + ["resumed"]
    assert all(base[f"split{k}_top1"] is not None for k in (1, 2, 3))
    assert base["splits_done"] == 3
    lstm = again["rows"][1]
    assert [lstm[f"split{k}_status"] for k in (1, 2, 3)] == [
        "already done",
        "evaluated",
        "already done",
    ]
    assert (lstm2 / "report" / "report.md").is_file()

    # Other overrides into the same folder would mix two recipes in one table: refused.
    assert main(_args(recipe, videos, ann, out, "--set", "head.hidden=32")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trained with another recipe" in err and "head.hidden" in err
    assert {p: p.stat().st_mtime_ns for p in kept} == before


@pytest.mark.slow
def test_overridden_recipe_shows_the_paper_as_reference(ucf, tmp_path, capsys):
    videos, ann, recipe = ucf
    out = tmp_path / "out"
    args = _args(recipe, videos, ann, out, "--splits", "2", "--set", "head.hidden=8")
    assert main(args) == 0
    assert "paper 97.97% (reference only)" in capsys.readouterr().out
    row = json.loads((out / "reproduce.json").read_text())["rows"][0]
    assert row["overridden"] and not row["paper_comparable"]
    assert row["splits_total"] == 1 and row["split2_top1"] is not None
    md = (out / "reproduce.md").read_text()
    assert "Recipe overridden" in md and "head.hidden=8" in md and "[97.97]" in md
    assert not (out / "tiny-gru" / "split1").exists()


def test_table_states_the_videos_used_not_the_videos_listed(ucf, tmp_path, capsys):
    # The issue: on an incomplete tree the table and run.json counted the listed videos.
    videos, ann, recipe = ucf
    missing = sorted(videos.rglob("*.avi"))[0]
    missing.unlink()
    out = tmp_path / "out"
    assert main(_args(recipe, videos, ann, out, "--splits", "1")) == 2  # refused by default
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--allow-missing" in err and missing.name in err
    assert main(_args(recipe, videos, ann, out, "--splits", "1", "--allow-missing")) == 0
    table = json.loads((out / "reproduce.json").read_text())
    info = json.loads((out / "tiny-gru" / "split1" / "run.json").read_text())
    used = table["used"]["1"]
    assert used == {"classes": 2, **info["counts"]}
    assert used["train"] + used["val"] + used["test"] == 15  # 16 listed, one missing
    md = (out / "reproduce.md").read_text()
    assert f"Videos used: split 1: 2 classes, {used['train']} train" in md


def test_an_unknown_recipe_is_named_before_the_data_is_judged(tmp_path, capsys):
    """On data without official splits the complaint was about --splits, not the typo."""
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label,group\na.mp4,x,g1\nb.mp4,y,g2\n")
    out = tmp_path / "out"
    assert (
        main(["reproduce", "efficientnet-gur", "--dataset", str(manifest), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert (
        err.startswith("harkit: error: unknown recipe 'efficientnet-gur'") and "--splits" not in err
    )
    assert not out.exists()


def test_reproduce_on_data_without_splits_names_no_splits_argument(tmp_path, capsys):
    """Without --splits it said '--splits : ... or train once without --splits'."""
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label,group\na.mp4,x,g1\nb.mp4,y,g2\n")
    out = tmp_path / "out"
    assert main(["reproduce", "synthetic-gru", "--dataset", str(manifest), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"harkit: error: {manifest} is a 'csv' dataset without official splits; cross-validate "
        "it by group instead (--splits leave-one-group-out, or --splits 5-fold)\n"
    )
