"""The flow stream's dataset: stored flow files as normalised 2-channel clips.

Items follow :class:`harkit.data.clips.ClipDataset`: a dict with ``video`` float32
``(T, 2, S, S)`` (``(T, L, 2, S, S)`` for segment sampling), ``mask``, ``label`` and ``index``,
so :func:`harkit.data.clips.collate_clips` batches both streams alike. A time step is one
flow pair (x, y channels); values are displacement / bound in ``[-1, 1]`` (I3D flow input).
Sampling, when given, picks among the stored pairs as if they were frames. A missing or
unreadable flow file (missing, truncated, failing its CRC) gives a
:class:`harkit.data.clips.SkippedVideo` whose reason names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from harkit.data.clips import EpochSeeded, SkippedVideo
from harkit.data.datasets import VideoIndex
from harkit.data.jobs import common_video_root
from harkit.data.sampling import SamplingConfig, sample_indices
from harkit.flow.extract import stored_video_root, working_shape
from harkit.flow.storage import FlowFileError, flow_file_path, load_flow

__all__ = ["FlowDataset", "flow_to_tensor"]


def flow_to_tensor(
    quantized: np.ndarray,
    size: int | Sequence[int],
    *,
    resize: int | None = None,
    crop_at: tuple[float, float] = (0.5, 0.5),
    hflip: bool = False,
) -> torch.Tensor:
    """``uint8 (N, H, W, 2)`` stored flow -> ``float32 (N, 2, h, w)`` in ``[-1, 1]``.

    ``size`` is one side (a square) or ``(h, w)``. The shorter side is resized to ``resize``
    (default: the crop's shorter side) with the displacements scaled by the same factor, then
    an ``h x w`` window is cut at relative position ``crop_at`` (``(0.5, 0.5)`` = centre), as
    :class:`~harkit.data.transforms.ClipTransform` cuts the RGB frames. ``hflip`` mirrors the
    clip and negates x motion.
    """
    crop_h, crop_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    flow = torch.from_numpy(np.ascontiguousarray(quantized)).permute(0, 3, 1, 2)
    flow = flow.float().div_(127.5).sub_(1.0)  # = displacement / bound
    height, width = flow.shape[-2:]
    new_h, new_w = working_shape(height, width, resize or min(crop_h, crop_w))
    if (new_h, new_w) != (height, width):
        flow = F.interpolate(flow, size=(new_h, new_w), mode="bilinear", antialias=True)
        scale = torch.tensor([new_w / width, new_h / height]).view(1, 2, 1, 1)
        flow = (flow * scale).clamp_(-1.0, 1.0)
    if new_h < crop_h:
        raise ValueError(f"cannot crop {crop_h}x{crop_w} from flow of {new_h}x{new_w}")
    if new_w < crop_w:  # a portrait video under a landscape crop: zero motion at the sides
        pad = crop_w - new_w
        flow = F.pad(flow, (pad // 2, pad - pad // 2))
        new_w = crop_w
    top = round((new_h - crop_h) * crop_at[0])
    left = round((new_w - crop_w) * crop_at[1])
    flow = flow[:, :, top : top + crop_h, left : left + crop_w]
    if hflip:
        flow = flow.flip(-1)
        flow[:, 0].neg_()
    return flow.contiguous()


class FlowDataset(EpochSeeded, Dataset):
    """Items of a :class:`VideoIndex` as stored flow clips (see the module docstring).

    ``video_root`` maps videos to flow files as the extraction did; by default it is read from
    ``flow_root/flow_config.json``. ``train`` draws a random crop position and, with
    probability ``hflip``, a horizontal flip per clip.
    """

    def __init__(
        self,
        index: VideoIndex,
        flow_root: str | Path,
        sampling: SamplingConfig | None = None,
        size: int = 224,
        *,
        resize: int | None = None,
        video_root: str | Path | None = None,
        train: bool = False,
        hflip: float = 0.0,
    ) -> None:
        if resize is not None and resize < size:
            raise ValueError(f"resize ({resize}) must be >= size ({size})")
        self.index = index
        self.flow_root = Path(flow_root)
        self.sampling = sampling
        self.size = size
        self.resize = resize
        self.train = train
        self.hflip = hflip
        self.video_root = Path(video_root) if video_root else self._stored_root()

    def _stored_root(self) -> Path:
        return stored_video_root(self.flow_root) or common_video_root(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def flow_path(self, i: int) -> Path:
        return flow_file_path(self.index[i].path, self.video_root, self.flow_root)

    def __getitem__(self, i: int) -> dict[str, Any] | SkippedVideo:
        item = self.index[i]
        try:
            stored = load_flow(self.flow_path(i))
        except FlowFileError as exc:
            return SkippedVideo(i, str(item.path), str(exc))
        pairs = len(stored.flow)
        rng = self.item_rng(i) if self.train else None
        if self.sampling is None:
            picks, mask = np.arange(pairs), np.ones(pairs, dtype=bool)
        else:
            sampled = sample_indices(pairs, self.sampling, train=self.train, rng=rng)
            picks, mask = sampled.indices, sampled.mask
        crop_at, flip = (0.5, 0.5), False
        if self.train and rng is not None:
            crop_at = (float(rng.random()), float(rng.random()))
            flip = bool(rng.random() < self.hflip)
        video = flow_to_tensor(
            stored.flow[picks.reshape(-1)],
            self.size,
            resize=self.resize,
            crop_at=crop_at,
            hflip=flip,
        )
        return {
            "video": video.reshape(*picks.shape, *video.shape[1:]),
            "mask": torch.from_numpy(mask),
            "label": self.index.class_index(item.label),
            "index": i,
        }
