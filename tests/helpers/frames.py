"""Synthetic frames, and an AVI header that lies about its frame count."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def pattern_frames(num_frames: int = 40, height: int = 48, width: int = 64, seed: int = 0):
    """Frames whose content changes every step (a bar moves over noise), so order matters."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(base[None], num_frames, axis=0)
    for t in range(num_frames):
        x = (3 * t) % (width - 6)
        frames[t, :, x : x + 6] = (255, 40 * (t % 6), 0)
    return frames


def claim_frames(avi: Path, claimed: int) -> None:
    """Patch an AVI's frame counts (avih dwTotalFrames, strh dwLength) to ``claimed``."""
    data = bytearray(avi.read_bytes())
    for tag, offset in ((b"avih", 24), (b"strh", 40)):
        at = data.find(tag)
        assert at >= 0, f"{avi}: no {tag!r} chunk"
        struct.pack_into("<I", data, at + offset, claimed)
    avi.write_bytes(bytes(data))


def moving_square(label: int, seed: int) -> np.ndarray:
    """8 frames of 32x32: a bright square moving right (class 0) or left (class 1)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, (8, 32, 32, 3), dtype=np.uint8)
    for t in range(8):
        x = 2 + 3 * t if label == 0 else 26 - 3 * t
        frames[t, 12:20, x : x + 6] = 230
    return frames
