"""``harkit reproduce`` end to end on a tiny UCF101 tree in the official layout."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harkit.cli.main import main
from harkit.data.synthetic import write_video
from harkit.train.reproduce import find_ablations, split_state

CLASSES = ("ApplyEyeMakeup", "Archery")
# UCF101's splits test groups 1-7, 8-14 and 15-21: with these four every split has a
# test group and three training groups.
GROUPS = ("g01", "g08", "g15", "g22")
CLIPS = ("c01", "c02")


def _frames(label: int, seed: int) -> np.ndarray:
    """8 frames of 32x32: a bright square moving right (class 0) or left (class 1)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (8, 32, 32, 3), dtype=np.uint8)
    for t in range(8):
        x = 2 + 3 * t if label == 0 else 26 - 3 * t
        frames[t, 12:20, x : x + 6] = 230
    return frames


def build_ucf101(shared: Path, root: Path) -> tuple[Path, Path]:
    """Videos named exactly as the real split files list them, for a few classes and groups,
    and split files restricted to them (CRLF, class ids renumbered 1..n as classInd says)."""
    real = shared / "data" / "ucf101" / "ucfTrainTestlist"
    videos, ann = root / "UCF-101", root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    ids = {c: i for i, c in enumerate(CLASSES, 1)}

    def keep(name: str) -> bool:
        _, cls, group, clip = Path(name).stem.split("_")
        return cls in ids and group in GROUPS and clip in CLIPS

    (ann / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for c, i in ids.items()).encode())
    names: set[str] = set()
    for k in (1, 2, 3):
        train = [line.split()[0] for line in (real / f"trainlist0{k}.txt").read_text().splitlines()]
        test = [line.strip() for line in (real / f"testlist0{k}.txt").read_text().splitlines()]
        train, test = [n for n in train if n and keep(n)], [n for n in test if n and keep(n)]
        assert train and test, f"split {k} needs train and test videos"
        names.update(train + test)
        lines = [f"{n} {ids[n.split('/')[0]]}" for n in train]
        (ann / f"trainlist0{k}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
        (ann / f"testlist0{k}.txt").write_bytes(("\r\n".join(test) + "\r\n").encode())
    assert len(names) == len(CLASSES) * len(GROUPS) * len(CLIPS)
    for seed, name in enumerate(sorted(names)):
        write_video(videos / name, _frames(CLASSES.index(name.split("/")[0]), seed), fps=8)
    return videos, ann


def write_recipes(folder: Path) -> Path:
    """A weight-free recipe with paper numbers, and one ablation of it."""
    (folder / "ablations").mkdir(parents=True)
    recipe = folder / "tiny-gru.yaml"
    recipe.write_text(
        "base: synthetic-gru\n"
        "name: tiny-gru\n"
        "reported: {ucf101_top1: 97.97, hmdb51_top1: 73.12}\n"
        "input: {sampling: {num_frames: 8}}\n"
        "head: {hidden: 16}\n"
        "optim: {epochs: 1, batch_size: 4}\n"
    )
    (folder / "ablations" / "tiny-lstm.yaml").write_text(
        "base: ../tiny-gru.yaml\n"
        "name: tiny-lstm\n"
        "reported: {ucf101_split1_top1: 90.36}\n"
        "head: {cell: lstm}\n"
    )
    (folder / "ablations" / "other.yaml").write_text("base: synthetic-gru\nname: other\n")
    return recipe


@pytest.fixture
def ucf(shared_dir, tmp_path):
    videos, ann = build_ucf101(shared_dir, tmp_path / "data")
    return videos, ann, write_recipes(tmp_path / "recipes")


def _args(recipe, videos, ann, out, *extra):
    return ["reproduce", str(recipe), "--dataset", str(videos), "--kind", "ucf101",
            "--annotations", str(ann), "--out", str(out), "--no-progress", *extra]  # fmt: skip


def test_finds_the_ablations_whose_base_is_the_recipe(tmp_path):
    recipe = write_recipes(tmp_path)
    assert [p.name for p in find_ablations(recipe)] == ["tiny-lstm.yaml"]
    assert [p.stem for p in find_ablations("fusion-gru")] == [
        "fusion-gru-googlenet", "fusion-gru-irv2"
    ]  # fmt: skip


def test_refuses_data_without_official_splits_and_unknown_splits(ucf, tmp_path, capsys):
    videos, ann, recipe = ucf
    assert main(_args(recipe, videos, ann, tmp_path / "o", "--splits", "4")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ucf101 has official splits 1-3" in err
    args = ["reproduce", str(recipe), "--dataset", str(videos), "--kind", "folder",
            "--out", str(tmp_path / "o")]  # fmt: skip
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
    assert [lstm[f"split{k}_status"] for k in (1, 2, 3)] == ["already done", "evaluated",
                                                             "already done"]  # fmt: skip
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
