"""Ablation grids: parsing, variants, and the comparison table they write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harkit.experiments import ablate, grid_variants, parse_grid
from harkit.experiments.ablate import Variant, variant_dir
from harkit.train.run import RunError


def test_ablation_grid_writes_a_comparison_table(toy, small, dim, tmp_path: Path) -> None:
    grid = parse_grid(["head.cell=gru,lstm", "head.hidden=8,[8,8]"])
    assert grid == {"head.cell": ["gru", "lstm"], "head.hidden": ["8", "[8,8]"]}
    variants = grid_variants(
        small().name,
        {"head.cell": ["gru", "lstm"]},
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=8",
            "optim.epochs=1",
            "optim.batch_size=8",
        ],
    )
    assert [v.name for v in variants] == ["head.cell=gru", "head.cell=lstm"]
    data = toy(dim(variants[0].recipe))
    rows = ablate(variants, data, tmp_path / "abl", progress=False)
    assert [r["variant"] for r in rows] == ["head.cell=gru", "head.cell=lstm"]
    assert rows[1]["params"] > rows[0]["params"]  # an LSTM has 4 gates, a GRU 3
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "head.cell=lstm" in table and (tmp_path / "abl" / "ablation.csv").is_file()
    assert "fractions (0-1)" in table  # one unit for the table's metrics, said once


# -- a finished variant's run.json is read like any run's -----------------------------------


def _finished_variant(tmp_path: Path, small, run_json: dict) -> Variant:
    """A variant whose run folder looks finished (ablate then evaluates it, not trains)."""
    (variant,) = grid_variants(
        small().name,
        {"head.cell": ["gru"]},
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=8",
            "optim.epochs=1",
            "optim.batch_size=8",
        ],
    )
    run = variant_dir(tmp_path / "abl", variant.name)
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"")
    (run / "run.json").write_text(json.dumps(run_json), encoding="utf-8")
    return variant


def test_ablate_refuses_a_finished_variant_of_an_unreadable_run_format(
    toy, small, dim, tmp_path: Path
) -> None:
    variant = _finished_variant(tmp_path, small, {"format_version": 99, "harkit_version": "9.0"})
    with pytest.raises(RunError, match=r"run format 99 written by harkit 9\.0"):
        ablate([variant], toy(dim(variant.recipe)), tmp_path / "abl", progress=False)
    assert not (tmp_path / "abl" / "ablation.md").exists()


def test_ablate_reads_a_finished_variant_s_run_json_typed(toy, small, dim, tmp_path: Path) -> None:
    # json.loads took any value: a string parameter count went into the table unchecked
    variant = _finished_variant(tmp_path, small, {"format_version": 2, "parameters": "many"})
    with pytest.raises(RunError) as caught:
        ablate([variant], toy(dim(variant.recipe)), tmp_path / "abl", progress=False)
    message = str(caught.value)
    assert "run.json" in message and "key 'parameters'" in message and "\n" not in message
