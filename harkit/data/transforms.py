"""Clip transforms on torchvision transforms v2: one set of random parameters per clip.

A clip goes in as ``uint8 (T, H, W, 3)`` (numpy or tensor) and comes out as
``float32 (T, 3, S, S)`` normalised with the mean/std the backbone asks for. The clip is
wrapped as a ``tv_tensors.Video`` so every v2 transform draws its parameters once and
applies them to all frames alike (a flipped clip has every frame flipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, confloat

from harkit.config import StrictModel

if TYPE_CHECKING:  # torch/torchvision load on first use: recipes validate without them
    import torch

__all__ = ["ClipTransform", "TransformConfig", "clip_to_tensor"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TransformConfig(StrictModel):
    """Pixel preprocessing. Sizes left unset follow the backbone's input size."""

    resize: int | None = Field(default=None, ge=1, le=8192)
    """Shorter side before cropping; default: the crop size (crop the centre square)."""
    crop_size: int | None = Field(default=None, ge=1, le=8192)
    """Square crop fed to the network; default: the backbone's input size."""
    random_crop: bool = False
    """Training only: random crop position instead of the centre."""
    hflip: confloat(ge=0.0, le=1.0) = 0.0
    """Training only: probability of a horizontal flip of the whole clip."""
    rotation: float = Field(default=0.0, ge=0.0, le=180.0)
    """Training only: random rotation in [-rotation, +rotation] degrees (seed 002: 5)."""


def clip_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` -> ``uint8 (T, 3, H, W)`` tensor, without copying pixels."""
    import torch

    tensor = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected a clip of shape (T, H, W, 3), got {tuple(tensor.shape)}")
    return tensor.permute(0, 3, 1, 2)


class ClipTransform:
    """Resize, crop, optional augmentation and normalisation of a whole clip."""

    def __init__(
        self,
        config: TransformConfig,
        input_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        train: bool = False,
    ) -> None:
        import torch
        from torchvision.transforms import v2

        crop = config.crop_size or input_size
        resize = config.resize or crop
        if resize < crop:
            raise ValueError(f"resize ({resize}) must be >= crop_size ({crop})")
        steps = [v2.Resize(resize, antialias=True)]
        if train and config.rotation > 0:
            steps.append(v2.RandomRotation(config.rotation))
        steps.append(v2.RandomCrop(crop) if train and config.random_crop else v2.CenterCrop(crop))
        if train and config.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(config.hflip))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.pipeline = v2.Compose(steps)
        self.output_size = crop

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        import torch
        from torchvision import tv_tensors

        video = tv_tensors.Video(clip_to_tensor(frames))
        return self.pipeline(video).as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return f"ClipTransform({self.pipeline})"
