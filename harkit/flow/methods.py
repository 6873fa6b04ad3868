"""Optical flow methods behind one call: ``compute_flow(prev_gray, next_gray, method)``.

Every method takes two ``uint8 (H, W)`` grayscale frames and returns the displacement that
maps ``prev`` onto ``next`` as ``float32 (H, W, 2)`` (x then y, in pixels):
``next[y + fy, x + fx] ~ prev[y, x]``.

* ``tvl1``       OpenCV contrib Dual TV-L1 with its default parameters (seed 001's flow).
* ``farneback``  OpenCV polynomial-expansion flow; fast, smoother, less accurate.
* ``dis``        OpenCV DIS flow, ``medium`` preset; ``dis-fast`` uses the ``fast`` preset.
* ``raft-small`` / ``raft-large``  torchvision RAFT. Needs the pretrained weights file: on a
                 CUDA machine it is downloaded into the torch hub cache when missing; on CPU
                 (slow) it runs only from a weights file already on disk.

Method objects are built once per process and reused: OpenCV algorithm objects keep their
buffers between calls, and RAFT loads its weights once.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit.errors import HarkitError

__all__ = [
    "FLOW_METHODS",
    "FlowMethod",
    "FlowMethodError",
    "RaftFlow",
    "compute_flow",
    "compute_pairs",
    "get_flow_method",
    "raft_weights_path",
]


class FlowMethodError(HarkitError):
    """An unknown flow method, or one that cannot run here (e.g. RAFT without its weights)."""


def _check_pair(prev: np.ndarray, nxt: np.ndarray) -> None:
    if prev.ndim != 2 or prev.shape != nxt.shape:
        raise ValueError(
            f"flow needs two grayscale frames of one shape (H, W), got {prev.shape} and {nxt.shape}"
        )
    if prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(f"flow needs uint8 frames, got {prev.dtype} and {nxt.dtype}")


class FlowMethod(ABC):
    """One optical flow algorithm; ``pairs`` may batch, ``__call__`` does one pair."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow from ``prev`` to ``nxt`` (``uint8 (H, W)``) as ``float32 (H, W, 2)``."""

    def pairs(self, frames: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames of ``uint8 (T, H, W)``: ``float32 (T-1, H, W, 2)``."""
        frames = np.asarray(frames)
        if frames.ndim != 3 or len(frames) < 2:
            raise ValueError(f"expected at least 2 frames as (T, H, W), got {frames.shape}")
        out = np.empty((len(frames) - 1, *frames.shape[1:], 2), dtype=np.float32)
        for t in range(len(frames) - 1):
            out[t] = self(frames[t], frames[t + 1])
        return out


class TVL1Flow(FlowMethod):
    name = "tvl1"

    def __init__(self) -> None:
        import cv2

        self._algo = cv2.optflow.DualTVL1OpticalFlow_create()

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        _check_pair(prev, nxt)
        return np.asarray(self._algo.calc(prev, nxt, None), dtype=np.float32)


class FarnebackFlow(FlowMethod):
    name = "farneback"

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import cv2

        _check_pair(prev, nxt)
        # the usual settings (OpenCV samples, most two-stream code): 3 levels, 15 px window
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return np.asarray(flow, dtype=np.float32)


class DISFlow(FlowMethod):
    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        import cv2

        presets = {
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        if preset not in presets:
            raise FlowMethodError(f"DIS preset must be one of {sorted(presets)}, got {preset!r}")
        self._algo = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        _check_pair(prev, nxt)
        return np.asarray(self._algo.calc(prev, nxt, None), dtype=np.float32)


_RAFT_WEIGHTS = {"small": "Raft_Small_Weights", "large": "Raft_Large_Weights"}


def raft_weights_path(variant: str = "small") -> Path:
    """Where torchvision keeps the RAFT ``variant`` weights: ``<torch hub dir>/checkpoints/``."""
    import torch
    from torchvision.models import optical_flow

    url = getattr(optical_flow, _RAFT_WEIGHTS[variant]).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class RaftFlow(FlowMethod):
    """torchvision RAFT on gray frames repeated to RGB; pads to a multiple of 8, at least 128."""

    name = "raft"

    def __init__(
        self,
        variant: str = "small",
        weights: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 8,
    ) -> None:
        import torch
        from torchvision.models import optical_flow

        if variant not in _RAFT_WEIGHTS:
            raise FlowMethodError(f"RAFT variant must be 'small' or 'large', got {variant!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        builder = optical_flow.raft_small if variant == "small" else optical_flow.raft_large
        model = builder(weights=None, progress=False)
        model.load_state_dict(self._state_dict(variant, weights))
        self.model = model.eval().to(self.device)

    def _state_dict(self, variant: str, weights: str | Path | None) -> dict:
        import torch
        from torchvision.models import optical_flow

        path = Path(weights) if weights else raft_weights_path(variant)
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
        if weights is not None or self.device.type != "cuda":
            hub = Path(torch.hub.get_dir()) / "checkpoints"
            raise FlowMethodError(
                f"RAFT-{variant} weights file {path.name} not found at {path}"
                + ("" if weights else f" (torch hub cache {hub})")
                + "; on CPU RAFT runs only from a local weights file: download "
                f"{getattr(optical_flow, _RAFT_WEIGHTS[variant]).DEFAULT.url} into {hub}"
            )
        enum = getattr(optical_flow, _RAFT_WEIGHTS[variant]).DEFAULT
        try:
            return enum.get_state_dict(progress=False)
        except OSError as exc:  # URLError is an OSError: offline, proxy, DNS
            raise FlowMethodError(
                f"cannot download RAFT-{variant} weights {path.name} ({exc}); put the file "
                f"from {enum.url} into the torch hub cache {path.parent}"
            ) from exc

    def _run(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        def prepare(frames: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, torch.float32)
            return (x / 127.5 - 1.0)[:, None].expand(-1, 3, -1, -1)

        height, width = prev.shape[-2:]
        # RAFT wants sides divisible by 8 and at least 128 (its correlation pyramid)
        pad_h, pad_w = max(-height % 8, 128 - height), max(-width % 8, 128 - width)
        a, b = prepare(prev), prepare(nxt)
        if pad_h or pad_w:
            a = F.pad(a, (0, pad_w, 0, pad_h), mode="replicate")
            b = F.pad(b, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            flow = self.model(a.contiguous(), b.contiguous())[-1]
        return flow[:, :, :height, :width].permute(0, 2, 3, 1).float().cpu().numpy()

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        _check_pair(prev, nxt)
        return self._run(prev[None], nxt[None])[0]

    def pairs(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 3 or len(frames) < 2:
            raise ValueError(f"expected at least 2 frames as (T, H, W), got {frames.shape}")
        # pair i is (frames[i], frames[i + 1]): both sides of a batch take the same pair indices
        pairs, chunks = len(frames) - 1, []
        for start in range(0, pairs, self.batch_size):
            stop = min(start + self.batch_size, pairs)
            chunks.append(self._run(frames[start:stop], frames[start + 1 : stop + 1]))
        return np.concatenate(chunks).astype(np.float32, copy=False)


FLOW_METHODS: dict[str, Callable[..., FlowMethod]] = {
    "tvl1": TVL1Flow,
    "farneback": FarnebackFlow,
    "dis": functools.partial(DISFlow, "medium"),
    "dis-fast": functools.partial(DISFlow, "fast"),
    "raft-small": functools.partial(RaftFlow, "small"),
    "raft-large": functools.partial(RaftFlow, "large"),
}
"""Name -> builder. Builders of ``raft-*`` accept ``weights=`` (a local file) and ``device=``."""


@functools.lru_cache(maxsize=8)
def _cached(name: str, weights: str | None) -> FlowMethod:
    builder = FLOW_METHODS[name]
    return builder(weights=weights) if name.startswith("raft") else builder()


def get_flow_method(name: str, weights: str | Path | None = None) -> FlowMethod:
    """The method ``name`` (built once per process). ``weights``: a RAFT weights file."""
    if name not in FLOW_METHODS:
        raise FlowMethodError(f"unknown flow method {name!r}; choose from {list(FLOW_METHODS)}")
    if weights is not None and not name.startswith("raft"):
        raise FlowMethodError(f"flow method {name!r} takes no weights file")
    return _cached(name, str(weights) if weights is not None else None)


def compute_flow(
    prev_gray: np.ndarray, next_gray: np.ndarray, method: str | FlowMethod = "tvl1"
) -> np.ndarray:
    """Flow from ``prev_gray`` to ``next_gray`` (``uint8 (H, W)``) as ``float32 (H, W, 2)``."""
    algo = get_flow_method(method) if isinstance(method, str) else method
    return algo(prev_gray, next_gray)


def compute_pairs(frames: np.ndarray, method: str | FlowMethod = "tvl1") -> np.ndarray:
    """Flow between consecutive frames of ``uint8 (T, H, W)``: ``float32 (T-1, H, W, 2)``."""
    algo = get_flow_method(method) if isinstance(method, str) else method
    return algo.pairs(frames)
