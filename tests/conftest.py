"""Shared fixtures: generated videos, the optional ../shared folder, in-memory training data.

Helpers (constants, builders) live in ``tests/helpers``; this file holds fixtures and hooks.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from harkit.precision import PRECISION_ENV
from harkit.synth import write_video
from tests.helpers.frames import pattern_frames


def pytest_configure(config: pytest.Config) -> None:
    # Test tensors are tiny: one intra-op thread beats two fighting over a shared 2-core machine.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Backbone ONNX graphs (the CPU default engine) go to a per-session cache, not ~/.cache;
    one cache for the session exports each network once."""
    os.environ["HARKIT_CACHE"] = str(tmp_path_factory.mktemp("harkit-cache"))


@pytest.fixture(params=["fp32", "bf16"])
def fast_precision(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per precision a fast path can take, forced with ``HARKIT_PRECISION``
    whatever this CPU has natively: CI must hold on CPUs with and without native bf16. bf16
    is emulated (slow) without it, so tests using this fixture stay tiny."""
    monkeypatch.setenv(PRECISION_ENV, request.param)
    return request.param


@pytest.fixture(params=["fork", "forkserver", "spawn"])
def start_method(request: pytest.FixtureRequest) -> Iterator[str]:
    """Worker processes (DataLoader, pools) start with this method, as Python's default: fork
    is Linux's up to Python 3.13, forkserver from 3.14, spawn on macOS and Windows. Narrow it
    with ``@pytest.mark.parametrize("start_method", [...], indirect=True)``."""
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(request.param, force=True)
    yield request.param
    multiprocessing.set_start_method(before, force=True)


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video(name, num_frames=40, ...)`` writes an H.264 video (B-frames) and returns it."""

    def make(
        name: str = "clip.mp4",
        num_frames: int = 40,
        height: int = 48,
        width: int = 64,
        fps: float = 25,
        seed: int = 0,
    ) -> Path:
        path = tmp_path / name
        write_video(path, pattern_frames(num_frames, height, width, seed), fps=fps)
        return path

    return make


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests using it skip in a user's clone."""
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    if not shared.is_dir():
        pytest.skip("../shared is not present")
    return shared


@pytest.fixture
def toy() -> Callable[..., object]:
    """``toy(dim, n_train=32, ...)``: :func:`tests.helpers.training.toy_data`, in-memory
    features whose class is their time order (training and experiment tests). Imported here,
    not at the top: ``harkit.train`` (Lightning) takes seconds to import."""
    from tests.helpers.training import toy_data

    return toy_data
