"""Clip transforms on torchvision transforms v2: one set of random parameters per clip.

A clip goes in as ``uint8 (T, H, W, 3)`` (numpy or tensor) and comes out as
``float32 (T, 3, h, w)`` (a square unless ``crop_size`` is a pair) normalised with the
mean/std the backbone asks for. The clip is wrapped as a ``tv_tensors.Video`` so every v2
transform draws its parameters once and applies them to all frames alike (a flipped clip has
every frame flipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BeforeValidator, Field, confloat

from harkit.config import ConfigError, StrictModel

if TYPE_CHECKING:  # torch/torchvision load on first use: recipes validate without them
    import torch

    from harkit.backbones.spec import Preprocessing

__all__ = ["ClipTransform", "TransformConfig", "clip_to_tensor"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


Side = Annotated[int, Field(ge=1, le=8192)]


def _crop_size(value: object) -> object:
    """One clear error for a crop size (a union would report each member's)."""
    pair = isinstance(value, list | tuple)
    sides = list(value) if pair else [value]  # type: ignore[call-overload]
    if value is None or (
        len(sides) == (2 if pair else 1)
        and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 8192 for s in sides)
    ):
        return tuple(sides) if pair else value
    raise ValueError("expected a side or [height, width], each 1 to 8192")


CropSize = Annotated[Side | tuple[Side, Side] | None, BeforeValidator(_crop_size)]


class TransformConfig(StrictModel):
    """Pixel preprocessing. Sizes left unset follow the backbone's input size."""

    resize: Side | None = None
    """Shorter side before cropping; default: the crop's shorter side (crop the centre), or
    the backbone weights' ``resize_size`` where they set one (no built-in backbone does)."""
    crop_size: CropSize = None
    """Crop fed to the network: a square's side, or ``[height, width]``; default: the
    backbone's input size. ``[224, 298]`` keeps a whole 4:3 frame, where a centre square
    cuts off what happens near the left and right edges (arms stretched sideways); frame
    (2D) RGB feature backbones only, as they pool over any size."""
    random_crop: bool = False
    """Training only: random crop position instead of the centre."""
    hflip: confloat(ge=0.0, le=1.0) = 0.0
    """Training only: probability of a horizontal flip of the whole clip."""
    rotation: float = Field(default=0.0, ge=0.0, le=180.0)
    """Training only: random rotation in [-rotation, +rotation] degrees (seed 002: 5)."""

    @property
    def square(self) -> bool:
        return not isinstance(self.crop_size, tuple) or self.crop_size[0] == self.crop_size[1]

    def crop_shape(self, input_size: int) -> tuple[int, int]:
        """``(height, width)`` of the crop, ``input_size`` square by default."""
        size = self.crop_size or input_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def clip_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` -> ``uint8 (T, 3, H, W)`` tensor, without copying pixels."""
    import torch

    tensor = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected a clip of shape (T, H, W, 3), got {tuple(tensor.shape)}")
    return tensor.permute(0, 3, 1, 2)


class ClipTransform:
    """Resize, crop, optional augmentation and normalisation of a whole clip.

    ``input_size``, ``mean``, ``std``, ``resize_size`` and ``interpolation`` are the network's
    (see :meth:`from_preprocessing`, which takes them from a backbone weights entry); the
    ``config``'s ``resize`` / ``crop_size`` override the sizes. The shorter side is resized to
    ``config.resize``, else ``resize_size`` (when the crop is the network's own), else the
    crop's shorter side.
    """

    def __init__(
        self,
        config: TransformConfig,
        input_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        train: bool = False,
        *,
        resize_size: int | None = None,
        interpolation: str = "bilinear",
    ) -> None:
        import torch
        from torchvision.transforms import InterpolationMode, v2

        crop = config.crop_shape(input_size)
        resize = config.resize or (resize_size if config.crop_size is None else None) or min(crop)
        if resize < min(crop):
            raise ConfigError(
                f"input.transform.resize ({resize}) must be >= the crop's shorter side "
                f"({min(crop)}: input.transform.crop_size, or the backbone's input size)"
            )
        # torchvision's default (bilinear) is left implicit: the same pipeline as before
        # weights entries had their own interpolation
        mode = {"interpolation": InterpolationMode(interpolation)}
        steps = [v2.Resize(resize, antialias=True, **({} if interpolation == "bilinear" else mode))]
        if train and config.rotation > 0:
            steps.append(v2.RandomRotation(config.rotation))
        # a frame narrower than the crop (portrait video, wide crop) is padded with zeros
        random = train and config.random_crop
        steps.append(v2.RandomCrop(crop, pad_if_needed=True) if random else v2.CenterCrop(crop))
        if train and config.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(config.hflip))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.pipeline = v2.Compose(steps)
        self.output_size = crop
        """``(height, width)``."""

    @classmethod
    def from_preprocessing(
        cls, config: TransformConfig, preprocessing: Preprocessing, train: bool = False
    ) -> ClipTransform:
        """The transform of a network whose input is ``preprocessing`` (a backbone weights
        entry's, ``spec.preprocessing_for(weights)``), under ``config``."""
        p = preprocessing
        return cls(
            config,
            p.input_size,
            p.mean,
            p.std,
            train,
            resize_size=p.resize_size,
            interpolation=p.interpolation,
        )

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        import torch
        from torchvision import tv_tensors

        video = tv_tensors.Video(clip_to_tensor(frames))
        return self.pipeline(video).as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return f"ClipTransform({self.pipeline})"
