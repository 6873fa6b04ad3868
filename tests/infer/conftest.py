"""Fixtures of the inference tests: run folders (tests/helpers/runs) and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runs import RECIPES, write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(kind)`` writes a run folder of one of :data:`tests.helpers.runs.RECIPES`
    and returns it."""

    def make(kind: str = "gru_features", name: str | None = None, **kw: Any) -> Path:
        return write_run(tmp_path / (name or f"run_{kind}"), RECIPES[kind], **kw)

    return make


@pytest.fixture
def cli() -> Callable[..., int]:
    """``cli('predict', ...)`` runs ``harkit.cli.main.main``."""
    import harkit.cli.main as main

    def run(*argv: str | Path) -> int:
        return main.main([str(a) for a in argv])

    return run
