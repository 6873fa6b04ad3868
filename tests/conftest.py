"""Shared fixtures: generated videos and the optional ../shared folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.data.synthetic import write_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Test tensors are tiny: one intra-op thread beats two fighting over a shared 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Backbone ONNX graphs (the CPU default engine) go to a per-session cache, not ~/.cache;
    one cache for the session exports each network once."""
    os.environ["HARKIT_CACHE"] = str(tmp_path_factory.mktemp("harkit-cache"))


def pattern_frames(num_frames: int = 40, height: int = 48, width: int = 64, seed: int = 0):
    """Frames whose content changes every step (a bar moves over noise), so order matters."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(base[None], num_frames, axis=0)
    for t in range(num_frames):
        x = (3 * t) % (width - 6)
        frames[t, :, x : x + 6] = (255, 40 * (t % 6), 0)
    return frames


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
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED
