"""Rendering clips and whole synthetic datasets (``harkit data synth``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import InstanceOf

from harkit._lazy import validated
from harkit.arguments import PathArg
from harkit.errors import HarkitError
from harkit.io import atomic_write_text
from harkit.synth.config import KINDS, REVERSED_OF, SynthConfig
from harkit.synth.people import render_people
from harkit.synth.scene import pixel_noise, random_stream
from harkit.synth.shapes import render_shapes
from harkit.synth.video import write_video

__all__ = ["clip_filename", "render_clip", "render_dataset"]

logger = logging.getLogger(__name__)


def render_clip(label: str, actor: int, clip: int, config: SynthConfig | None = None) -> np.ndarray:
    """Render one clip as ``uint8 (T, S, S, 3)`` RGB; identical bytes for identical arguments.

    ``actor`` and ``clip`` are 1-based. A class that is the reversal of another is rendered as
    a clip of that other class (drawn from this clip's own random stream), frame-reversed.
    """
    config = config or SynthConfig()
    known = KINDS[config.kind]
    if label not in known:
        raise ValueError(f"unknown {config.kind} class {label!r}; choose from {list(known)}")
    if clip < 1:
        raise ValueError(f"clips are numbered from 1, got {clip}")
    forward = REVERSED_OF.get(label, label)
    if config.kind == "people":
        rng = random_stream(config, 4, known.index(label), actor, clip)
        video = render_people(forward, actor, config, rng)
    else:
        rng = random_stream(config, 3, known.index(label), actor, clip)
        video = render_shapes(forward, actor, config, rng)
    if config.noise_std > 0:
        video += pixel_noise(rng, video.shape, config.noise_std)
    if forward != label:
        # reversing after the noise keeps the whole clip an exact reversal of a forward clip
        video = video[::-1]
    np.clip(video, 0.0, 255.0, out=video)
    video += np.float32(0.5)  # then truncation rounds to nearest
    return np.ascontiguousarray(video.astype(np.uint8))


def clip_filename(label: str, actor: int, clip: int, container: str = "mp4") -> str:
    """``<class>_a<actor:02d>_c<clip:02d>.<container>``."""
    return f"{label}_a{actor:02d}_c{clip:02d}.{container}"


_STAMP = "synth_config.json"


@validated
def render_dataset(
    out_dir: PathArg,
    config: InstanceOf[SynthConfig] | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render the dataset into ``out_dir`` and return the path of its ``manifest.csv``.

    Resumable: finished videos already there are kept. A folder rendered with a different
    config is an error unless ``overwrite`` (then every video is rendered again).
    ``progress(done, total)`` is called after each clip.
    """
    config = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / _STAMP
    wanted = config.model_dump_json(indent=2) + "\n"
    jobs = [
        (label, actor, clip, Path(label) / clip_filename(label, actor, clip, config.container))
        for label in config.class_names
        for actor in range(1, config.num_actors + 1)
        for clip in range(1, config.clips_per_actor + 1)
    ]

    stale = stamp.is_file() and stamp.read_text(encoding="utf-8") != wanted
    if stale and not overwrite:
        raise HarkitError(
            f"{out} was rendered with a different synthetic config ({stamp}); "
            "use another folder or overwrite=True"
        )
    if stale or overwrite:
        # drop old videos before the new stamp lands, so no old file is ever taken as new
        for *_, rel in jobs:
            (out / rel).unlink(missing_ok=True)
    if not stamp.is_file() or stale or overwrite:
        atomic_write_text(stamp, wanted)

    for label in config.class_names:  # temp files left by a killed run
        folder = out / label
        if folder.is_dir():
            for leftover in folder.glob(f".{label}_a*.tmp"):
                leftover.unlink(missing_ok=True)

    rendered = 0
    for done, (label, actor, clip, rel) in enumerate(jobs, start=1):
        target = out / rel
        if not target.is_file():
            frames = render_clip(label, actor, clip, config)
            write_video(
                target,
                frames,
                config.fps,
                config.codec,
                container=config.container,
                bframes=config.bframes,
                crf=config.crf,
            )
            rendered += 1
        if progress is not None:
            progress(done, len(jobs))

    test_ids = set(config.test_actor_ids)
    lines = ["path,label,split,group"]
    for label, actor, _clip, rel in jobs:
        split = "test" if actor in test_ids else "train"
        lines.append(f"{rel.as_posix()},{label},{split},a{actor:02d}")
    manifest = atomic_write_text(out / "manifest.csv", "\n".join(lines) + "\n")
    logger.info("synthetic dataset: %d clips (%d rendered now) in %s", len(jobs), rendered, out)
    return manifest
