"""How long a run's training clips were: the unit a stream window and a long video's
sliding window are measured in (:func:`training_clip_length`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harkit.train.run_info import RunInfo

__all__ = ["PROBE_VIDEOS", "ClipLength", "training_clip_length"]

log = logging.getLogger(__name__)

#: Training videos probed for a typical clip length when run.json records none.
PROBE_VIDEOS = 24


@dataclass(frozen=True)
class ClipLength:
    """A typical training clip: ``frames`` at ``fps`` (None: unknown), and where it is from."""

    frames: float
    fps: float | None
    origin: str

    def at(self, fps: float | None) -> float:
        """Frames of the same duration at another rate (time is what the head saw)."""
        if self.fps and fps and fps > 0:
            return self.frames * fps / self.fps
        return self.frames


def training_clip_length(run_info: RunInfo | None) -> ClipLength | None:
    """The typical training clip of a run, from its ``run.json``.

    ``train_clips: {"frames": F, "fps": R}`` when recorded; else the median length of up to
    :data:`PROBE_VIDEOS` training videos of the recorded ``dataset_config``, when that data
    is still reachable here (headers only). None when neither works.
    """
    recorded = run_info.train_clips if run_info is not None else None
    if recorded is not None and recorded.frames > 0:
        fps = recorded.fps if recorded.fps and recorded.fps > 0 else None
        return ClipLength(recorded.frames, fps, "recorded in run.json")
    config = run_info.dataset_config if run_info is not None else None
    if config is None:
        return None
    try:  # runs from before train_clips was recorded: probe the data if it is still here
        from harkit.data import build_index
        from harkit.data.inspect import typical_clip

        index = build_index(config).subset("train")
        clips = typical_clip(index, PROBE_VIDEOS)
    except Exception as exc:  # best effort: data moved, unreadable, or another machine
        log.debug("no training clip length from the dataset: %s", exc)
        return None
    if clips is None:
        return None
    return ClipLength(clips["frames"], clips["fps"], f"median of {clips['videos']} training videos")
