"""Long videos: the run's clip window slid over a whole video, and multi-view predictions.

A run is trained on clips of a typical length (:func:`harkit.infer.training_clip.
training_clip_length`); a long video holds many actions. :meth:`Recognizer.predict_segments
<harkit.infer.recognizer.Recognizer.predict_segments>` cuts it into windows of that length
(``stride`` apart, half a window by default; the last window ends at the last frame), labels
each window exactly as ``predict`` labels a video of those frames, and merges neighbouring
windows of one label into segments ``[start_s, end_s, label, confidence]`` (confidence = the
mean of the merged windows). Overlapping windows share their overlap at the midpoint between
their centres, so segments tile the video without overlapping and a label change falls
between the centres of the two windows that disagree.

:meth:`Recognizer.predict_views <harkit.infer.recognizer.Recognizer.predict_views>` averages
the softmax of N windows evenly spaced over the video (the papers' video-level numbers).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harkit.io import atomic_write_text

__all__ = [
    "Segment",
    "VideoSegments",
    "WindowPrediction",
    "merge_windows",
    "view_starts",
    "window_starts",
    "write_segments",
]


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frames of windows of ``window`` frames, ``stride`` apart, covering all frames
    (the last one is moved back to end at the last frame). A video of at most one window
    is one window from frame 0."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1 frame, got {window} and {stride}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def view_starts(num_frames: int, views: int, window: int) -> list[int]:
    """First frames of ``views`` windows of ``window`` frames spread evenly from the first to
    the last possible position."""
    last = max(0, num_frames - window)
    return [round(float(x)) for x in np.linspace(0, last, views)]


@dataclass
class WindowPrediction:
    """The label of one window ``[start_frame, end_frame)`` of a video."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    label: str
    confidence: float
    top_k: list[tuple[str, float]]
    probs: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "top_k": [{"label": lab, "prob": round(p, 6)} for lab, p in self.top_k],
        }


@dataclass
class Segment:
    """Neighbouring windows of one label: ``[start_s, end_s, label, confidence]``."""

    start_s: float
    end_s: float
    label: str
    confidence: float
    windows: int

    def to_row(self) -> list[Any]:
        return [round(self.start_s, 3), round(self.end_s, 3), self.label, round(self.confidence, 6)]


def merge_windows(windows: list[WindowPrediction], fps: float) -> list[Segment]:
    """Windows (in time order) -> segments; see the module docstring for the boundaries."""
    if not windows:
        return []
    # each window owns the time closer to its centre than to its neighbours' centres
    centres = [(w.start_frame + w.end_frame) / 2 for w in windows]
    edges = [float(windows[0].start_frame)]
    edges += [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    edges.append(float(max(w.end_frame for w in windows)))
    segments: list[Segment] = []
    group: list[float] = []
    for i, w in enumerate(windows):
        if segments and segments[-1].label == w.label:
            group.append(w.confidence)
            segments[-1].end_s = edges[i + 1] / fps
            segments[-1].windows += 1
            segments[-1].confidence = float(np.mean(group))
        else:
            group = [w.confidence]
            segments.append(Segment(edges[i] / fps, edges[i + 1] / fps, w.label, w.confidence, 1))
    return segments


@dataclass
class VideoSegments:
    """Per-window labels and merged segments of one video."""

    source: str
    fps: float
    num_frames: int
    window: int
    """Frames per window."""
    stride: int
    window_origin: str
    """Where the window length comes from (the run's training clips, or an option)."""
    windows: list[WindowPrediction]
    segments: list[Segment]
    note: str = ""
    """Set when the video is shorter than one window (then one window covers all of it)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "fps": round(self.fps, 6),
            "num_frames": self.num_frames,
            "window_frames": self.window,
            "stride_frames": self.stride,
            "window_s": round(self.window / self.fps, 3),
            "stride_s": round(self.stride / self.fps, 3),
            "window_origin": self.window_origin,
            "note": self.note,
            "windows": [w.to_dict() for w in self.windows],
            "segments": [s.to_row() for s in self.segments],
        }

    def table(self) -> str:
        """A short human-readable table of the segments."""
        # the window used: a video shorter than the window is one window over all of it
        used = min(self.window, self.num_frames) / self.fps
        many = f" every {self.stride / self.fps:.2f} s" if len(self.windows) > 1 else ""
        noun = "window" if len(self.windows) == 1 else "windows"
        lines = [
            f"{self.source}: {len(self.windows)} {noun} of {used:.2f} s{many} "
            f"-> {len(self.segments)} segments"
        ]
        if self.note:
            lines.append(f"  ({self.note})")
        lines += [
            f"  {s.start_s:8.2f}s - {s.end_s:8.2f}s  {s.label} {s.confidence:.2f}"
            for s in self.segments
        ]
        return "\n".join(lines)


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_segments(result: VideoSegments, prefix: str | Path) -> list[Path]:
    """``PREFIX.segments.json`` (everything), ``PREFIX.segments.csv`` (start_s, end_s, label,
    confidence) and ``PREFIX.windows.csv`` (one row per window, top-k as ``label:prob``
    joined by ``;``), each written atomically."""
    prefix = Path(prefix)
    out = [
        Path(f"{prefix}.segments.json"),
        Path(f"{prefix}.segments.csv"),
        Path(f"{prefix}.windows.csv"),
    ]
    atomic_write_text(out[0], json.dumps(result.to_dict(), indent=1) + "\n")
    header = [["start_s", "end_s", "label", "confidence"]]
    atomic_write_text(out[1], _csv(header + [s.to_row() for s in result.segments]))
    rows: list[list[Any]] = [
        ["start_s", "end_s", "start_frame", "end_frame", "label", "confidence", "top_k"]
    ]
    for w in result.windows:
        top = ";".join(f"{lab}:{p:.6f}" for lab, p in w.top_k)
        d = w.to_dict()
        rows.append(
            [d["start_s"], d["end_s"], w.start_frame, w.end_frame, w.label, d["confidence"], top]
        )
    atomic_write_text(out[2], _csv(rows))
    return out


def frames_for_seconds(seconds: float, fps: float) -> int:
    """A duration as a frame count at ``fps`` (at least one frame)."""
    return max(1, math.floor(seconds * fps + 0.5))
