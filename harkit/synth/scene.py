"""What both kinds of synthetic actor share: per-clip random streams, backgrounds,
fixed-point drawing and sensor noise."""

from __future__ import annotations

import math

import cv2
import numpy as np

from harkit.synth.config import SynthConfig

__all__ = ["MARGIN", "SHIFT", "fixed_point", "make_background", "pixel_noise", "random_stream"]

MARGIN = 2.0  # pixels kept between the object's outer radius and the frame edge
SHIFT = 4  # cv2 fixed-point bits: positions are drawn to 1/16 pixel so slow motion is smooth


def random_stream(config: SynthConfig, *key: int) -> np.random.Generator:
    """The random stream of ``key`` (an actor's look, a clip) under ``config.seed``."""
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def make_background(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A muted (S, S, 3) float32 background: solid, linear gradient or smooth texture."""
    size = config.size
    kind = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    c0 = rng.uniform(15.0, 150.0, size=3).astype(np.float32)
    c1 = rng.uniform(15.0, 150.0, size=3).astype(np.float32)
    if kind == "solid":
        return np.broadcast_to(c0, (size, size, 3)).copy()
    if kind == "gradient":
        theta = rng.uniform(0.0, 2 * math.pi)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        ramp = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
        weight = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    else:
        cells = int(rng.integers(3, 9))
        grid = rng.random((cells, cells)).astype(np.float32)
        weight = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:  # fine stripes on top of the blobs
            period = float(rng.uniform(6.0, 16.0))
            theta = rng.uniform(0.0, math.pi)
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            phase = (math.cos(theta) * xx + math.sin(theta) * yy) * (2 * math.pi / period)
            weight = weight + 0.25 * np.sin(phase)
        weight = np.clip(weight, 0.0, 1.0)
    return c0 + (c1 - c0) * weight[..., None]


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2's fixed-point integers (``shift=SHIFT``)."""
    return np.round(points * (1 << SHIFT)).astype(np.int32)


def pixel_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Zero-mean triangular noise (sum of two uniform bytes) with standard deviation ``std``.

    Four times faster than Gaussian samples, which otherwise took half of a clip's render time.
    """
    count = math.prod(shape)
    pairs = np.frombuffer(rng.bytes(2 * count), dtype=np.uint8).reshape(2, *shape)
    noise = pairs[0].astype(np.float32)
    noise += pairs[1]
    noise -= np.float32(255.0)
    noise *= np.float32(std / math.sqrt(2 * (256**2 - 1) / 12))
    return noise
