"""Writing frames as a video file (H.264 by default), atomically: the synthetic datasets,
tests and benchmarks use it, and :mod:`harkit.infer.video_out` picks its encoder the same way."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from harkit.errors import HarkitError
from harkit.io import atomic_output

__all__ = ["resolve_encoder", "write_video"]

logger = logging.getLogger(__name__)


def _encoder_works(name: str) -> bool:
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 32, 32, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25, 1)
        ctx.open()
        # a yuv420p frame as is: frame.reformat keeps a per-thread context (see rgb_converter)
        ctx.encode(av.VideoFrame.from_ndarray(np.zeros((48, 32), np.uint8), format="yuv420p"))
        ctx.encode(None)
    except Exception:  # a missing or unusable (e.g. hardware-only) encoder raises many types
        return False
    return True


@functools.cache
def resolve_encoder(codec: str = "h264") -> str:
    """The encoder name this PyAV build will use for ``codec`` ('h264' or 'mpeg4').

    For H.264, libx264 is preferred; without any usable H.264 encoder this falls back to
    'mpeg4' with a warning.
    """
    if codec == "mpeg4":
        candidates = ["mpeg4"]
    elif codec in ("h264", "libx264"):
        candidates = ["libx264", "h264", "libopenh264"]
    else:
        candidates = [codec]
    for name in candidates:
        if _encoder_works(name):
            return name
    if codec in ("h264", "libx264") and _encoder_works("mpeg4"):
        logger.warning("this PyAV build has no usable H.264 encoder; writing MPEG-4 part 2")
        return "mpeg4"
    raise HarkitError(f"no usable video encoder for codec {codec!r} in this PyAV build")


def _encoder_options(encoder: str, bframes: int, crf: int) -> dict[str, str]:
    options = {"bf": str(bframes)}
    if encoder == "libx264":
        # 'veryfast' still allows B-frames (ultrafast does not). b-adapt=0 puts them on a fixed
        # pattern; scenecut=0 too, because on noisy frames x264's scene-cut check otherwise
        # turned every B-frame into a P-frame. One thread: small clips encode faster without
        # thread start-up, and the output bytes are reproducible.
        options.update(preset="veryfast", crf=str(crf), threads="1")
        if bframes > 0:
            options["x264-params"] = "b-adapt=0:scenecut=0"
    elif encoder == "mpeg4":
        options["qscale"] = "3"
    return options


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float = 15,
    codec: str = "h264",
    *,
    container: str | None = None,
    bframes: int = 2,
    crf: int = 20,
    options: Mapping[str, str] | None = None,
) -> Path:
    """Encode ``uint8 (T, H, W, 3)`` RGB frames to ``path``, atomically.

    The container ('mp4', 'avi', 'mkv', ...) comes from the suffix unless given. H and W must
    be even (yuv420p). ``options`` are passed to the encoder on top of the defaults.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("cannot write a video with no frames")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
    fmt = container or path.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"{path}: no suffix to tell the container; pass container=")
    if fmt == "mkv":
        fmt = "matroska"
    encoder = resolve_encoder(codec)
    encoder_options = {**_encoder_options(encoder, bframes, crf), **dict(options or {})}
    rate = Fraction(fps).limit_denominator(1001)

    with atomic_output(path) as tmp, av.open(str(tmp), "w", format=fmt) as output:
        stream = output.add_stream(encoder, rate=rate, options=encoder_options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path
