"""Fixtures for experiment tests: a small features recipe and its head's input size, and a
tiny UCF101 tree in the official layout (``ucf``). The training tests' in-memory feature
data (``toy``) comes from tests/conftest.py; the builders from tests/helpers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harkit.models.recipe import Recipe
from tests.helpers.experiments import build_ucf101, write_recipes
from tests.helpers.training import recipe_dim, small_recipe


@pytest.fixture
def small() -> Callable[..., Recipe]:
    """:func:`tests.helpers.training.small_recipe`."""
    return small_recipe


@pytest.fixture
def dim() -> Callable[[Recipe], int]:
    """The head's input size for a features recipe."""
    return recipe_dim


@pytest.fixture
def ucf(shared_dir, tmp_path):
    videos, ann = build_ucf101(shared_dir, tmp_path / "data")
    return videos, ann, write_recipes(tmp_path / "recipes")
