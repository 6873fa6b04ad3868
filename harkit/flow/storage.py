"""Flow storage: displacement quantised to uint8 the I3D way, one compressed ``.npz`` per video.

Quantisation: each component is clipped to ``[-bound, +bound]`` pixels (``bound`` = 20) and
mapped linearly to 0-255, ``q = round((d + bound) * 255 / (2 * bound))``; decoding is the
inverse, so a round trip is off by at most half a step (``bound / 255`` px) inside the bound.
For the network, ``q / 127.5 - 1`` is ``d / bound`` in ``[-1, 1]``.

A flow file ``<flow_root>/<video path relative to the video root>.npz`` holds

* ``flow``     ``uint8 (P, H, W, 2)``: P = T - 1 pairs, x then y, at the working size
* ``indices``  ``int64 (T,)``: the frame indices the pairs run between (pair k: k -> k+1)
* ``method``   the flow method name, ``bound`` the clip bound in pixels

written with ``np.savez_compressed`` to a temp file and renamed, so a file that exists was
complete when written. Later damage (a truncated copy, a full disk) is caught: the zip's
directory sits at its end, so :func:`check_flow_file` spots a cut file cheaply (``harkit flow``
recomputes it) and :func:`load_flow` turns any unreadable file, CRC errors included, into a
:class:`FlowFileError` (datasets skip and report the video). Smooth flow fields compress well
(zlib), and reading back is one inflate.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harkit.errors import HarkitError
from harkit.io import atomic_output

__all__ = [
    "DEFAULT_BOUND",
    "FlowFile",
    "FlowFileError",
    "check_flow_file",
    "decode_flow",
    "flow_file_path",
    "load_flow",
    "quantize_flow",
    "save_flow",
]

DEFAULT_BOUND = 20.0
_MEMBERS = ("bound.npy", "flow.npy", "indices.npy", "method.npy")
# what a damaged .npz raises: zip structure, inflate, numpy header/data, empty file
_READ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class FlowFileError(HarkitError):
    """A flow file is missing or unreadable."""


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """``float (…, 2)`` displacement in pixels -> ``uint8``, clipped to ``±bound``."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def decode_flow(quantized: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """``uint8`` flow -> ``float32`` displacement in pixels (the inverse of the quantisation)."""
    q = np.asarray(quantized)
    if q.dtype != np.uint8:
        raise ValueError(f"expected uint8 quantised flow, got {q.dtype}")
    return q.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)


@dataclass(frozen=True)
class FlowFile:
    """The contents of one flow file."""

    flow: np.ndarray
    indices: np.ndarray
    method: str
    bound: float

    def displacement(self) -> np.ndarray:
        """``float32 (P, H, W, 2)`` in pixels."""
        return decode_flow(self.flow, self.bound)


def flow_file_path(video: str | Path, video_root: str | Path, flow_root: str | Path) -> Path:
    """``flow_root / <video relative to video_root> + '.npz'`` (``a/b.avi`` -> ``a/b.avi.npz``).

    The suffix is appended, not replaced, so ``x.mp4`` and ``x.avi`` (or a frame folder ``x``)
    never share a flow file.
    """
    from harkit.data.jobs import video_id

    try:
        return Path(flow_root) / f"{video_id(video, video_root)}.npz"
    except HarkitError as exc:
        raise FlowFileError(str(exc)) from None


def save_flow(
    path: str | Path,
    flow: np.ndarray,
    indices: np.ndarray,
    method: str,
    bound: float = DEFAULT_BOUND,
) -> Path:
    """Write a flow file atomically (temp file in the same folder, then a rename)."""
    path = Path(path)
    flow = np.asarray(flow)
    indices = np.asarray(indices, dtype=np.int64)
    if flow.dtype != np.uint8 or flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be uint8 (P, H, W, 2), got {flow.dtype} {flow.shape}")
    if indices.shape != (len(flow) + 1,):
        raise ValueError(f"need {len(flow) + 1} frame indices for {len(flow)} pairs")
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, flow=flow, indices=indices, method=np.array(method), bound=np.float32(bound)
        )
    return path


def _one_line(exc: BaseException) -> str:
    from harkit.data.jobs import one_line

    return one_line(exc)


def check_flow_file(path: str | Path) -> str | None:
    """Why the flow file at ``path`` is damaged, or ``None``. Cheap: reads the zip directory,
    the ``flow`` header and the frame indices, not the flow itself (whose CRC is checked when
    :func:`load_flow` reads it)."""
    try:
        if Path(path).stat().st_size == 0:
            return "is empty"
        with zipfile.ZipFile(path) as archive:
            missing = sorted(set(_MEMBERS) - set(archive.namelist()))
            if missing:
                return f"lacks {', '.join(missing)}"
            with archive.open("flow.npy") as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            with archive.open("indices.npy") as member:
                indices = np.lib.format.read_array(member, allow_pickle=False)
    except _READ_ERRORS as exc:
        return f"is unreadable ({_one_line(exc)})"
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 2:
        return f"holds {dtype} {tuple(shape)}, not uint8 (P, H, W, 2) flow"
    if indices.shape != (shape[0] + 1,):
        return f"has {indices.size} frame indices for {shape[0]} pairs"
    return None


def load_flow(path: str | Path) -> FlowFile:
    """Read a flow file written by :func:`save_flow`; a damaged one is a :class:`FlowFileError`."""
    path = Path(path)
    if not path.is_file():
        raise FlowFileError(f"{path}: flow file not found; compute it with `harkit flow`")
    try:
        with np.load(path, allow_pickle=False) as data:
            return FlowFile(
                flow=data["flow"],
                indices=data["indices"],
                method=str(data["method"]),
                bound=float(data["bound"]),
            )
    except _READ_ERRORS as exc:
        raise FlowFileError(
            f"{path}: unreadable flow file ({_one_line(exc)}); `harkit flow` recomputes it"
        ) from None
