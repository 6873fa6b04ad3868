"""Ablation grids: parsing, variants, and the comparison table they write."""

from __future__ import annotations

from pathlib import Path

from harkit.experiments import ablate, grid_variants, parse_grid


def test_ablation_grid_writes_a_comparison_table(toy, small, dim, tmp_path: Path) -> None:
    grid = parse_grid(["head.cell=gru,lstm", "head.hidden=8,[8,8]"])
    assert grid == {"head.cell": ["gru", "lstm"], "head.hidden": ["8", "[8,8]"]}
    variants = grid_variants(small().name, {"head.cell": ["gru", "lstm"]}, [
        "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
        "head.hidden=8", "optim.epochs=1", "optim.batch_size=8"])  # fmt: skip
    assert [v.name for v in variants] == ["head.cell=gru", "head.cell=lstm"]
    data = toy(dim(variants[0].recipe))
    rows = ablate(variants, data, tmp_path / "abl", progress=False)
    assert [r["variant"] for r in rows] == ["head.cell=gru", "head.cell=lstm"]
    assert rows[1]["params"] > rows[0]["params"]  # an LSTM has 4 gates, a GRU 3
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "head.cell=lstm" in table and (tmp_path / "abl" / "ablation.csv").is_file()
    assert "fractions (0-1)" in table  # one unit for the table's metrics, said once
