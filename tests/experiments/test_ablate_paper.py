"""Ablation tables: the paper's number beside harkit's, only where it is that configuration's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from harkit.experiments import ablate, grid_variants
from harkit.experiments.ablate import Variant
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import TrainData
from harkit.train.run_info import DatasetRecord

TINY = [
    "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
    "head.hidden=8",
    "optim.epochs=1",
    "optim.batch_size=8",
]


def test_a_grid_cell_that_changes_the_recipe_has_no_paper_numbers() -> None:
    variants = grid_variants("fusion-gru", {"head.cell": ["gru", "lstm"]}, TINY)
    same, changed = (v.recipe.reported for v in variants)
    assert same == load_recipe("fusion-gru").reported  # gru is fusion-gru's own cell
    assert changed == {}


def test_ablation_table_has_the_paper_column(toy, tmp_path: Path) -> None:
    (tmp_path / "f1.yaml").write_text(
        "base: fusion-gru\nname: with-f1\n"
        "reported: {ucf101_top1: 90.83, ucf101_split1_top1: 91.5, ucf101_f1: 90.53,"
        " hmdb51_top1: 60.0}\n",
        encoding="utf-8",
    )
    variants = [
        *grid_variants("fusion-gru", {"head.cell": ["gru", "lstm"]}, TINY),
        Variant("with-f1", load_recipe(tmp_path / "f1.yaml", TINY)),
    ]
    base = toy(sum(feature_dims(variants[0].recipe)))
    ucf101 = DatasetRecord(name="ucf101", kind="ucf101", split=1)
    info = base.info.model_copy(update={"dataset": ucf101})
    data = TrainData(base.train, base.val, base.test, base.classes, info)
    rows = ablate(variants, data, tmp_path / "abl", progress=False)

    gru, lstm, f1 = rows
    # a split-1 table shows the paper's mean over splits, labelled as such
    assert gru["paper_top1"] == pytest.approx(0.9797)
    assert gru["paper_source"] == "ucf101_top1 (paper mean over splits)"
    assert lstm["paper_top1"] is None and lstm["paper_source"] is None
    # The split-1 number beats the mean over splits for a split-1 test; F1 is weighted.
    assert f1["paper_top1"] == pytest.approx(0.915)
    assert f1["paper_f1_weighted"] == pytest.approx(0.9053)
    assert f1["paper_source"] == "ucf101_split1_top1 ucf101_f1 (paper mean over splits)"
    assert 0 <= f1["f1_weighted"] <= 1

    with (tmp_path / "abl" / "ablation.csv").open(encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    at = header.index("top1")
    assert header[at + 1] == "paper_top1"
    assert header[header.index("f1_weighted") + 1] == "paper_f1_weighted"
    table = (tmp_path / "abl" / "ablation.md").read_text(encoding="utf-8")
    assert "| paper_top1 |" in table and "0.9797" in table


def test_no_paper_number_for_other_data(toy, tmp_path: Path) -> None:
    variants = grid_variants("fusion-gru", {"head.cell": ["gru"]}, TINY)
    data = toy(sum(feature_dims(variants[0].recipe)))  # dataset 'toy': no paper numbers
    rows = ablate(variants, data, tmp_path / "abl", progress=False)
    assert rows[0]["paper_top1"] is None
    assert "paper_top1" in (tmp_path / "abl" / "ablation.md").read_text(encoding="utf-8")
