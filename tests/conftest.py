"""Shared fixtures: generated videos and the optional ../shared folder."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.precision import PRECISION_ENV
from harkit.synth import write_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Test tensors are tiny: one intra-op thread beats two fighting over a shared 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Backbone ONNX graphs (the CPU default engine) go to a per-session cache, not ~/.cache;
    one cache for the session exports each network once."""
    os.environ["HARKIT_CACHE"] = str(tmp_path_factory.mktemp("harkit-cache"))


#: Largest |fast - fp32| of a softmax probability, per precision the fast path ran in. fp32
#: fast paths differ from the reference only in op order and kernels (channels-last, ONNX
#: Runtime): <= 2e-7 measured. bf16 keeps 8 mantissa bits (relative rounding 2**-9 = 2e-3 per
#: op); over the test networks it moved probabilities by <= 3.7e-4 (the issue's AVX512-BF16
#: CPU saw the same 3.7e-4), so 3e-3 leaves an 8x margin.
PROB_ATOL = {"fp32": 1e-4, "bf16": 3e-3}
#: Largest ||fast - fp32|| / ||fp32|| of encoder features: fp32 <= 1e-6 measured; bf16
#: <= 7.7e-3 (roundings of 2**-9 accumulated over the depth of a ResNet18), bound 3e-2.
#: Checked beside the probabilities so that a flat softmax cannot hide wrong features.
FEATURE_RTOL = {"fp32": 1e-5, "bf16": 3e-2}


@pytest.fixture(params=["fp32", "bf16"])
def fast_precision(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per precision a fast path can take, forced with ``HARKIT_PRECISION``
    whatever this CPU has natively: CI must hold on CPUs with and without native bf16. bf16
    is emulated (slow) without it, so tests using this fixture stay tiny."""
    monkeypatch.setenv(PRECISION_ENV, request.param)
    return request.param


def claim_frames(avi: Path, claimed: int) -> None:
    """Patch an AVI's frame counts (avih dwTotalFrames, strh dwLength) to ``claimed``."""
    data = bytearray(avi.read_bytes())
    for tag, offset in ((b"avih", 24), (b"strh", 40)):
        at = data.find(tag)
        assert at >= 0, f"{avi}: no {tag!r} chunk"
        struct.pack_into("<I", data, at + offset, claimed)
    avi.write_bytes(bytes(data))


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
