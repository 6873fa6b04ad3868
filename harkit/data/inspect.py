"""Dataset statistics for ``harkit data inspect``: counts, groups, durations, unreadable files."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from harkit.data.datasets import GROUP_COLUMNS, VideoIndex
from harkit.data.video import FrameCountError, VideoReadError, probe, read_frames

__all__ = ["DatasetSummary", "summarize", "typical_clip"]


@dataclass
class DatasetSummary:
    name: str
    num_videos: int
    classes: dict[str, int]
    splits: dict[str, int]
    num_groups: int
    group_column: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    duration_s: dict[str, float] = field(default_factory=dict)
    frames: dict[str, float] = field(default_factory=dict)
    resolutions: dict[str, int] = field(default_factory=dict)
    fps: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_text(self) -> str:
        lines = [
            f"dataset {self.name}: {self.num_videos} videos, {len(self.classes)} classes, "
            f"{self.num_groups} groups",
            "splits: " + ", ".join(f"{k}={v}" for k, v in self.splits.items()),
        ]
        if self.group_column:
            lines.append(f"groups: from column '{self.group_column}'")
        elif not self.num_groups:
            lines.append(
                "groups: none, so leakage cannot be checked (no _gXX_/_aXX_ in clip names; a "
                f"CSV's group column is one of {', '.join(GROUP_COLUMNS)}, or --group-column NAME)"
            )
        if self.ignored_columns:
            lines.append("ignored columns: " + ", ".join(self.ignored_columns))
        width = max((len(c) for c in self.classes), default=5)
        lines += ["classes:"] + [f"  {c:<{width}}  {n}" for c, n in self.classes.items()]
        if self.duration_s:
            d = self.duration_s
            lines.append(
                f"duration s: min {d['min']:.2f}  mean {d['mean']:.2f}  max {d['max']:.2f}  "
                f"total {d['total']:.1f}"
            )
            f = self.frames
            lines.append(f"frames: min {f['min']:.0f}  mean {f['mean']:.1f}  max {f['max']:.0f}")
            lines.append(
                "resolution: " + ", ".join(f"{r} x{n}" for r, n in self.resolutions.items())
            )
            lines.append("fps: " + ", ".join(f"{r} x{n}" for r, n in self.fps.items()))
        lines.append(f"unreadable: {len(self.unreadable)}")
        lines += [f"  {path}: {reason}" for path, reason in self.unreadable.items()]
        return "\n".join(lines)


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"min": a.min(), "mean": a.mean(), "max": a.max(), "total": a.sum()}


def typical_clip(index: VideoIndex, max_videos: int = 24) -> dict[str, float] | None:
    """Median ``frames`` and ``fps`` of up to ``max_videos`` videos spread evenly over the
    sorted paths (headers only, so every class shows and it stays cheap); None when none of
    them can be read. Streams space their frames by it as training clips were."""
    picks = sorted(index, key=lambda item: str(item.path))
    if len(picks) > max_videos:
        picks = [picks[i] for i in np.linspace(0, len(picks) - 1, max_videos).astype(int)]
    infos = []
    for item in picks:
        with contextlib.suppress(VideoReadError):
            infos.append(probe(item.path))
    if not infos:
        return None
    rates = [i.fps for i in infos if i.fps > 0]
    return {
        "frames": float(np.median([i.num_frames for i in infos])),
        "fps": float(np.median(rates)) if rates else None,
        "videos": len(infos),
    }


def summarize(index: VideoIndex, probe_videos: bool = True) -> DatasetSummary:
    """Counts from the index; with ``probe_videos`` also metadata of every video."""
    summary = DatasetSummary(
        name=index.name,
        num_videos=len(index),
        classes=index.class_counts(),
        splits=dict(Counter(item.split or "none" for item in index)),
        num_groups=len({item.group for item in index if item.group}),
        group_column=index.group_column,
        ignored_columns=list(index.ignored_columns),
    )
    if not probe_videos:
        return summary
    durations, frames, sizes, rates = [], [], Counter(), Counter()
    for item in index:
        try:
            info = probe(item.path)
            if info.num_frames < 1:
                raise VideoReadError(item.path, "no frames")
            read_frames(item.path, [0])  # a header can promise frames that do not decode
        except VideoReadError as exc:
            summary.unreadable[str(item.path)] = (
                "no frame could be decoded" if isinstance(exc, FrameCountError) else exc.reason
            )
            continue
        durations.append(info.duration)
        frames.append(info.num_frames)
        sizes[f"{info.width}x{info.height}"] += 1
        rates[f"{info.fps:.2f}"] += 1
    if durations:
        summary.duration_s = _stats(durations)
        summary.frames = _stats(frames)
        summary.resolutions = dict(sizes.most_common())
        summary.fps = dict(rates.most_common())
    return summary
