"""Run folders written by the previous run format (1) still load, as the model they built."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from harkit.train import load_run, train
from tests.helpers.training import recipe_dim, small_recipe


def _as_format_1(run: Path, head_keys: dict) -> None:
    """Rewrite a run folder as format 1 wrote it: every key of the one head config."""
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    recipe["head"] = {**head_keys, **recipe["head"]}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "format_version": 1}))


def test_a_format_1_run_loads_and_predicts_the_same(toy, tmp_path: Path) -> None:
    recipe = small_recipe("optim.epochs=1", "optim.val_fraction=0")
    data = toy(recipe_dim(recipe))
    train(recipe, data, tmp_path / "run", progress=False)
    _, _, model = load_run(tmp_path / "run")
    x = torch.randn(2, 8, recipe_dim(recipe))
    before = model(x, torch.tensor([8, 8]))
    # format 1 saved keys a recurrent head never used (fusion, center, pooling: vote, ...)
    _as_format_1(tmp_path / "run", {"fusion": "learned", "center": False, "pooling": "last"})
    loaded, _, again = load_run(tmp_path / "run")
    assert loaded.head is not None and loaded.head.type == "recurrent"
    assert torch.equal(again(x, torch.tensor([8, 8])), before)
