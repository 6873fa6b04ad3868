"""Textured frames with a known motion, shared by the flow tests."""

from __future__ import annotations

import cv2
import numpy as np


def texture(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smoothed noise: texture at every scale a flow method's pyramid looks at."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255.0
    return smooth.astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels (sub-pixel, reflected borders)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def moving_frames(num_frames: int, height: int, width: int, dx: float) -> np.ndarray:
    """``uint8 (T, H, W, 3)`` RGB of a texture moving ``dx`` px right per frame."""
    base = texture(height, width + int(abs(dx) * num_frames) + 8, seed=1)
    frames = [shifted(base, dx * t, 0.0)[:, :width] for t in range(num_frames)]
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


#: Horizontal motion (px per frame) of each class of the flow tests' video tree.
MOTION = {"left": -2.0, "right": 2.0}
