"""The built-in recipes are package data (``harkit/recipes``) read with importlib.resources:
found from a zipped install too, ``base:`` chains and ``ablations/`` resolving there; a
user's own YAML file still loads and may build on a built-in recipe.
(An installed wheel: tests/test_wheel.py.)"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import harkit
from harkit.models import recipe as recipe_module
from harkit.models.recipe import list_recipes, load_recipe, recipe_dir

PACKAGED = Path(harkit.__file__).parent / "recipes"


@pytest.fixture
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARKIT_RECIPES", raising=False)


def test_the_recipes_are_inside_the_package(no_override: None) -> None:
    assert recipe_dir() == PACKAGED
    names = list_recipes()
    assert {"efficientnet-gru", "synthetic-gru", "ablations/efficientnet-gru-mean"} <= set(names)
    assert len(names) == len(list(PACKAGED.rglob("*.yaml")))


def test_recipes_load_from_a_zipped_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_override: None
) -> None:
    archive = tmp_path / "harkit.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(PACKAGED.rglob("*.yaml")):
            zf.write(path, f"harkit/recipes/{path.relative_to(PACKAGED).as_posix()}")
    expected = list_recipes()
    monkeypatch.setattr(
        recipe_module.resources, "files", lambda package: zipfile.Path(archive, f"{package}/")
    )
    recipe_module._packaged_recipes.cache_clear()
    try:
        folder = recipe_dir()
        assert folder != PACKAGED and folder.is_dir()  # copied out of the zip
        assert list_recipes() == expected
        mean = load_recipe("ablations/efficientnet-gru-mean")  # base: efficientnet-gru
        assert mean.head is not None and mean.head.type == "mean"
        assert mean.input.features[0].backbone == "efficientnet_lite0"
    finally:
        recipe_module._packaged_recipes.cache_clear()


def test_a_users_yaml_builds_on_a_built_in_recipe(tmp_path: Path, no_override: None) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: efficientnet-gru\nname: mine\nhead: {hidden: 32}\n", encoding="utf-8")
    (tmp_path / "ablations").mkdir()
    variant = tmp_path / "ablations" / "mine-lstm.yaml"
    variant.write_text(
        "base: ../mine.yaml\nname: mine-lstm\nhead: {cell: lstm}\n", encoding="utf-8"
    )
    recipe = load_recipe(variant)
    assert recipe.name == "mine-lstm" and recipe.head is not None
    assert (recipe.head.cell, recipe.head.hidden) == ("lstm", 32)
    assert recipe.input.features[0].backbone == "efficientnet_lite0"
