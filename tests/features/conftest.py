"""Fixtures of the feature tests: a tiny synthetic dataset (settings in tests/helpers/features)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.data.datasets import DatasetConfig, VideoIndex, load_index
from tests.helpers.features import tiny_dataset


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 videos (2 classes x 3 actors), 12 frames of 64x64."""
    return tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_index(tiny_root: Path) -> VideoIndex:
    return load_index(DatasetConfig(root=tiny_root))
