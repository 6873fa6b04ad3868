"""A built-in synthetic action dataset, rendered as real video files.

Two kinds of actor (``SynthConfig.kind``):

* ``shapes``: coloured shapes move, grow, rotate, fade, blink or shake over varied
  backgrounds (small and fast; pixel descriptors such as ``tiny_image`` suffice).
* ``people``: articulated figures (head, torso, two-segment arms and legs; clothes, skin,
  size, place and tempo differ per actor) raise and lower their arms, squat, bend, wave or
  clap over textured backgrounds, so that ImageNet features describe their pose.

Most classes come in pairs that differ only in time order: the second class of a pair is the
exact frame reversal of a clip drawn from the first class's distribution, so every single
frame has the same distribution in both classes and a model that ignores frame order is at
chance within a pair. The order-free classes (``blink``/``shake``, ``wave``/``clap``) can be
told apart without frame order.

Layout written by :func:`render_dataset`::

    out/<class>/<class>_a<actor:02d>_c<clip:02d>.mp4
    out/manifest.csv            path,label,split,group  (paths relative to out/)
    out/synth_config.json       the config that rendered the folder
"""

from __future__ import annotations

import colorsys
import functools
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from harkit.config import StrictModel
from harkit.errors import HarkitError
from harkit.io import atomic_output, atomic_write_text

__all__ = [
    "BACKGROUNDS",
    "ORDER_FREE_CLASSES",
    "PEOPLE_CLASSES",
    "PEOPLE_ORDER_FREE_CLASSES",
    "PEOPLE_TIME_ORDER_PAIRS",
    "SHAPES",
    "SYNTH_CLASSES",
    "TIME_ORDER_PAIRS",
    "ActorStyle",
    "FigureStyle",
    "SynthConfig",
    "actor_style",
    "clip_filename",
    "figure_style",
    "render_clip",
    "render_dataset",
    "resolve_encoder",
    "write_video",
]

logger = logging.getLogger(__name__)

#: (forward class, its time reversal). The second is rendered as the reversed first.
TIME_ORDER_PAIRS: list[tuple[str, str]] = [
    ("move_right", "move_left"),
    ("move_down", "move_up"),
    ("grow", "shrink"),
    ("rotate_cw", "rotate_ccw"),
    ("fade_in", "fade_out"),
]
#: Classes recognisable without frame order (a bag of frames suffices).
ORDER_FREE_CLASSES: tuple[str, ...] = ("blink", "shake")
#: All class names, in label-index order.
SYNTH_CLASSES: tuple[str, ...] = (
    *(name for pair in TIME_ORDER_PAIRS for name in pair),
    *ORDER_FREE_CLASSES,
)
#: The ``people`` kind: (forward class, its time reversal), as for the shapes.
PEOPLE_TIME_ORDER_PAIRS: list[tuple[str, str]] = [
    ("raise_arms", "lower_arms"),
    ("squat_down", "stand_up"),
    ("bend_down", "straighten_up"),
]
#: ``people`` classes recognisable from single frames (periodic, random phase).
PEOPLE_ORDER_FREE_CLASSES: tuple[str, ...] = ("wave", "clap")
#: All ``people`` class names, in label-index order.
PEOPLE_CLASSES: tuple[str, ...] = (
    *(name for pair in PEOPLE_TIME_ORDER_PAIRS for name in pair),
    *PEOPLE_ORDER_FREE_CLASSES,
)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "diamond", "star", "hexagon")
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "texture")

_REVERSED_OF = {
    backward: forward for forward, backward in (*TIME_ORDER_PAIRS, *PEOPLE_TIME_ORDER_PAIRS)
}
_KINDS = {"shapes": SYNTH_CLASSES, "people": PEOPLE_CLASSES}
_MARGIN = 2.0  # pixels kept between the object's outer radius and the frame edge
_SHIFT = 4  # cv2 fixed-point bits: positions are drawn to 1/16 pixel so slow motion is smooth
_MARKER_RGB = np.array([255.0, 255.0, 255.0], dtype=np.float32)

BackgroundKind = Literal["solid", "gradient", "texture"]
ActorKind = Literal["shapes", "people"]


class SynthConfig(StrictModel):
    """What :func:`render_dataset` renders. Defaults make a small dataset in a few seconds."""

    # before ``classes``: its validator reads the kind
    kind: ActorKind = Field(default="shapes", description="shapes or people (stick figures)")
    classes: list[str] | None = Field(
        default=None, description="subset of the kind's classes (in that order); None = all"
    )
    num_actors: int = Field(default=6, ge=2, le=999, description="actors = groups, a01..aNN")
    clips_per_actor: int = Field(default=2, ge=1, le=1000)
    num_frames: int = Field(default=32, ge=4, le=10_000)
    size: int = Field(default=96, ge=32, le=1024, description="square frame side, even")
    fps: int = Field(default=15, ge=1, le=240)
    seed: int = Field(default=0, ge=0)
    test_actors: int = Field(default=2, ge=0, description="the last N actors form the test split")
    codec: Literal["h264", "mpeg4"] = "h264"
    container: Literal["mp4", "avi"] = "mp4"
    bframes: int = Field(default=2, ge=0, le=16, description="H.264 B-frames between P-frames")
    crf: int = Field(default=20, ge=0, le=51, description="H.264 quality (lower = better)")
    noise_std: float = Field(default=4.0, ge=0.0, le=64.0, description="per-pixel noise, 0-255")
    backgrounds: list[BackgroundKind] = Field(
        default_factory=lambda: list(BACKGROUNDS), min_length=1
    )
    shared_scene: bool = Field(
        default=False,
        description="one background for the whole dataset (one room, lighting varies per "
        "clip), as when every actor is filmed in the same place",
    )

    @field_validator("size")
    @classmethod
    def _even_size(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"size must be even for yuv420p video, got {value}")
        return value

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        known = _KINDS[info.data.get("kind", "shapes")]
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; choose from {list(known)}")
        if len(set(value)) != len(value):
            raise ValueError("classes must not repeat")
        if len(value) < 2:
            raise ValueError("need at least 2 classes")
        return [name for name in known if name in value]

    @model_validator(mode="after")
    def _one_train_actor(self) -> SynthConfig:
        if self.test_actors >= self.num_actors:
            raise ValueError(
                f"test_actors ({self.test_actors}) must be below num_actors ({self.num_actors})"
            )
        return self

    @model_validator(mode="after")
    def _classes_of_kind(self) -> SynthConfig:
        # a kind set after the classes (assignment, model_copy) must still own them
        known = _KINDS[self.kind]
        if self.classes is not None and any(name not in known for name in self.classes):
            raise ValueError(f"classes {self.classes} are not all {self.kind} classes")
        return self

    @property
    def class_names(self) -> list[str]:
        """The classes this config renders, in label order."""
        return list(self.classes) if self.classes is not None else list(_KINDS[self.kind])

    @property
    def time_order_pairs(self) -> list[tuple[str, str]]:
        """The (forward, reversed) pairs of this kind that are both rendered."""
        pairs = TIME_ORDER_PAIRS if self.kind == "shapes" else PEOPLE_TIME_ORDER_PAIRS
        names = set(self.class_names)
        return [pair for pair in pairs if set(pair) <= names]

    @property
    def test_actor_ids(self) -> list[int]:
        """1-based ids of the held-out actors."""
        return list(range(self.num_actors - self.test_actors + 1, self.num_actors + 1))


# ----------------------------------------------------------------------------------------------
# Actors and clip parameters


@dataclass(frozen=True)
class ActorStyle:
    """How one actor (group) looks: the same in every clip of every class."""

    shape: str
    color: tuple[int, int, int]  # RGB
    radius: float  # outer radius in pixels at scale 1


def _rng(config: SynthConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def actor_style(actor: int, config: SynthConfig) -> ActorStyle:
    """The look of 1-based ``actor``: shape, saturated colour and size, fixed by the seed."""
    if actor < 1:
        raise ValueError(f"actors are numbered from 1, got {actor}")
    order = _rng(config, 0).permutation(len(SHAPES))
    rng = _rng(config, 1, actor)
    shape = SHAPES[int(order[(actor - 1) % len(SHAPES)])]
    hue = (_rng(config, 2).random() + (actor - 1) * 0.618034) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.85, 1.0))
    color = tuple(round(c * 255) for c in rgb)
    radius = rng.uniform(0.10, 0.15) * config.size
    return ActorStyle(shape=shape, color=(color[0], color[1], color[2]), radius=radius)


def _unit_polygon(shape: str) -> np.ndarray:
    """Outline of ``shape`` with outer radius 1, as (N, 2) float (x right, y down)."""

    def ring(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
        angles = phase + np.arange(n) * 2.0 * math.pi / n
        return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    if shape == "circle":
        return ring(40)
    if shape == "square":
        return ring(4, phase=math.pi / 4)
    if shape == "diamond":
        return ring(4) * np.array([1.0, 0.75])
    if shape == "triangle":
        return ring(3)
    if shape == "hexagon":
        return ring(6)
    if shape == "star":
        points = np.empty((10, 2))
        points[0::2] = ring(5)
        points[1::2] = ring(5, 0.5, math.pi / 5)
        return points
    if shape == "cross":
        w = 0.32
        return np.array(
            [[1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w],
             [-1, w], [-1, -w], [-w, -w], [-w, -1], [w, -1], [w, -w]],
            dtype=np.float64,
        ) / math.hypot(1.0, w)  # fmt: skip
    raise ValueError(f"unknown shape {shape!r}")


@dataclass
class _Track:
    """Per-frame object state of one clip; arrays of length T."""

    cx: np.ndarray
    cy: np.ndarray
    scale: np.ndarray
    angle: np.ndarray  # degrees, increasing = clockwise on screen
    alpha: np.ndarray  # 0 = invisible, 1 = opaque


def _progress(rng: np.random.Generator, frames: int) -> np.ndarray:
    """0 -> 1 ramp over a random active window (random speed and duration), held at the ends."""
    active = int(rng.integers(math.ceil(frames / 2), frames + 1))
    start = int(rng.integers(0, frames - active + 1))
    t = np.arange(frames, dtype=np.float64)
    return np.clip((t - start) / max(active - 1, 1), 0.0, 1.0)


def _track(label: str, style: ActorStyle, config: SynthConfig, rng: np.random.Generator) -> _Track:
    frames, size = config.num_frames, float(config.size)
    ones = np.ones(frames)

    def centre(max_scale: float) -> float:
        reach = style.radius * max_scale + _MARGIN
        return float(rng.uniform(reach, size - reach))

    angle0 = float(rng.uniform(0.0, 360.0))
    if label in ("move_right", "move_down"):
        reach = style.radius + _MARGIN
        span = size - 2 * reach
        distance = min(float(rng.uniform(0.35, 0.6)) * size, span)
        start = float(rng.uniform(reach, size - reach - distance))
        along = start + distance * _progress(rng, frames)
        across = centre(1.0) * ones
        cx, cy = (along, across) if label == "move_right" else (across, along)
        return _Track(cx, cy, ones.copy(), angle0 * ones, ones.copy())
    if label == "grow":
        s0, s1 = float(rng.uniform(0.4, 0.6)), float(rng.uniform(1.05, 1.3))
        cx, cy = centre(1.3), centre(1.3)
        scale = s0 + (s1 - s0) * _progress(rng, frames)
        return _Track(cx * ones, cy * ones, scale, angle0 * ones, ones.copy())
    if label == "rotate_cw":
        turn = float(rng.uniform(120.0, 270.0))
        cx, cy = centre(1.0), centre(1.0)
        angle = angle0 + turn * _progress(rng, frames)
        return _Track(cx * ones, cy * ones, ones.copy(), angle, ones.copy())
    if label == "fade_in":
        a0, a1 = float(rng.uniform(0.1, 0.25)), float(rng.uniform(0.9, 1.0))
        cx, cy = centre(1.0), centre(1.0)
        alpha = a0 + (a1 - a0) * _progress(rng, frames)
        return _Track(cx * ones, cy * ones, ones.copy(), angle0 * ones, alpha)
    if label == "blink":
        on, off = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        phase = int(rng.integers(0, on + off))
        visible = ((np.arange(frames) + phase) % (on + off)) < on
        cx, cy = centre(1.0), centre(1.0)
        return _Track(cx * ones, cy * ones, ones.copy(), angle0 * ones, visible.astype(float))
    if label == "shake":
        amp = float(rng.uniform(0.04, 0.08)) * size
        reach = style.radius + _MARGIN
        cx, cy = centre(1.0), centre(1.0)
        jitter = np.clip(rng.normal(0.0, amp, size=(frames, 2)), -2 * amp, 2 * amp)
        x = np.clip(cx + jitter[:, 0], reach, size - reach)
        y = np.clip(cy + jitter[:, 1], reach, size - reach)
        angle = angle0 + rng.normal(0.0, 10.0, size=frames)
        return _Track(x, y, ones.copy(), angle, ones.copy())
    raise ValueError(f"unknown class {label!r}; choose from {list(SYNTH_CLASSES)}")


def _background(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A muted (S, S, 3) float32 background: solid, linear gradient or smooth texture."""
    size = config.size
    kind = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    c0 = rng.uniform(15.0, 150.0, size=3).astype(np.float32)
    c1 = rng.uniform(15.0, 150.0, size=3).astype(np.float32)
    if kind == "solid":
        return np.broadcast_to(c0, (size, size, 3)).copy()
    if kind == "gradient":
        theta = rng.uniform(0.0, 2 * math.pi)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        ramp = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
        weight = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    else:
        cells = int(rng.integers(3, 9))
        grid = rng.random((cells, cells)).astype(np.float32)
        weight = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.5:  # fine stripes on top of the blobs
            period = float(rng.uniform(6.0, 16.0))
            theta = rng.uniform(0.0, math.pi)
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            phase = (math.cos(theta) * xx + math.sin(theta) * yy) * (2 * math.pi / period)
            weight = weight + 0.25 * np.sin(phase)
        weight = np.clip(weight, 0.0, 1.0)
    return c0 + (c1 - c0) * weight[..., None]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _draw(background: np.ndarray, track: _Track, style: ActorStyle) -> np.ndarray:
    """Composite the actor over the background for every frame -> float32 (T, S, S, 3)."""
    frames = len(track.cx)
    size = background.shape[0]
    outline = _unit_polygon(style.shape)
    color = np.asarray(style.color, dtype=np.float32)
    video = np.empty((frames, size, size, 3), dtype=np.float32)
    video[:] = background
    body = np.zeros((size, size), dtype=np.uint8)
    mark = np.zeros((size, size), dtype=np.uint8)
    for t in range(frames):
        if track.alpha[t] <= 0:
            continue
        radius = style.radius * track.scale[t]
        theta = math.radians(track.angle[t])
        rot = np.array([[math.cos(theta), -math.sin(theta)],
                        [math.sin(theta), math.cos(theta)]])  # fmt: skip
        centre = np.array([track.cx[t], track.cy[t]])
        points = outline @ rot.T * radius + centre
        # only the object's bounding box is touched: compositing whole frames dominated the time
        x0, y0 = np.maximum(np.floor(centre - radius) - 2, 0).astype(int)
        x1, y1 = np.minimum(np.ceil(centre + radius) + 3, size).astype(int)
        box = (slice(y0, y1), slice(x0, x1))
        body[box] = 0
        cv2.fillPoly(body, [_fixed(points)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        # an off-centre white dot makes the orientation (and rotation) visible for every shape
        dot = _fixed(centre + rot @ np.array([0.45 * radius, 0.0]))
        mark[box] = 0
        cv2.circle(
            mark, (int(dot[0]), int(dot[1])), round(0.2 * radius * (1 << _SHIFT)),
            255, -1, lineType=cv2.LINE_AA, shift=_SHIFT,
        )  # fmt: skip
        frame = video[t][box]
        scale = np.float32(track.alpha[t] / 255.0)
        frame += (body[box].astype(np.float32) * scale)[..., None] * (color - frame)
        frame += (mark[box].astype(np.float32) * scale)[..., None] * (_MARKER_RGB - frame)
    return video


# ----------------------------------------------------------------------------------------------
# People: articulated stick figures


@dataclass(frozen=True)
class FigureStyle:
    """How one ``people`` actor looks and moves: the same in every clip of every class."""

    height: float  # standing height in pixels, head to feet
    centre_x: float  # fraction of the frame width where the actor usually stands
    ground: float  # fraction of the frame height where the feet are
    limb: float  # limb thickness as a fraction of the height
    shirt: tuple[int, int, int]  # RGB, torso and upper arms
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]  # head and forearms
    tempo: float  # share of the clip an action usually takes (faster actors: smaller)


_SKIN = ((241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172))


def _saturated(hue: float, rng: np.random.Generator) -> tuple[int, int, int]:
    rgb = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95))
    return (round(rgb[0] * 255), round(rgb[1] * 255), round(rgb[2] * 255))


def figure_style(actor: int, config: SynthConfig) -> FigureStyle:
    """The look of 1-based ``people`` ``actor``: size, place, clothes, skin, tempo."""
    if actor < 1:
        raise ValueError(f"actors are numbered from 1, got {actor}")
    rng = _rng(config, 5, actor)
    hue = (_rng(config, 6).random() + (actor - 1) * 0.618034) % 1.0  # well-spread shirt hues
    return FigureStyle(
        # large in the frame, as a person filmed for gestures is: the pose must dominate what
        # ImageNet features see (at 0.55-0.75 of the height the GRU reached 64-80%)
        height=float(rng.uniform(0.68, 0.85)) * config.size,
        centre_x=float(rng.uniform(0.4, 0.6)),
        ground=float(rng.uniform(0.93, 0.97)),
        limb=float(rng.uniform(0.05, 0.075)),
        shirt=_saturated(hue, rng),
        trousers=_saturated(hue + rng.uniform(0.3, 0.7), rng),
        skin=_SKIN[int(rng.integers(len(_SKIN)))],
        tempo=float(rng.uniform(0.55, 0.9)),
    )


@dataclass
class _Pose:
    """Per-frame joint angles of one clip (arrays of length T), in degrees or fractions.

    Arm angles are measured at the shoulder from hanging straight down (0) outwards to
    straight up (180); elbow bend turns the forearm towards the body's midline.
    """

    left_arm: np.ndarray
    right_arm: np.ndarray
    left_elbow: np.ndarray
    right_elbow: np.ndarray
    squat: np.ndarray  # 0 standing .. 1 hips at half the leg length
    bend: np.ndarray  # 0 upright .. 1 torso folded towards the camera


def _figure_progress(rng: np.random.Generator, frames: int, tempo: float) -> np.ndarray:
    """0 -> 1 ramp over about ``tempo`` of the clip (random start), eased at both ends."""
    share = float(np.clip(tempo * rng.uniform(0.8, 1.2), 0.4, 1.0))
    active = max(2, round(share * frames))
    start = int(rng.integers(0, frames - active + 1))
    t = np.arange(frames, dtype=np.float64)
    ramp = np.clip((t - start) / (active - 1), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(math.pi * ramp)  # people accelerate and brake


def _pose(label: str, style: FigureStyle, frames: int, rng: np.random.Generator) -> _Pose:
    zeros = np.zeros(frames)

    def const(low: float, high: float) -> np.ndarray:
        return float(rng.uniform(low, high)) * np.ones(frames)

    hang_l, hang_r = const(4.0, 14.0), const(4.0, 14.0)
    bend_l, bend_r = const(0.0, 15.0), const(0.0, 15.0)
    if label == "raise_arms":
        ramp = _figure_progress(rng, frames, style.tempo)
        top = float(rng.uniform(150.0, 172.0))
        return _Pose(hang_l + (top - hang_l) * ramp, hang_r + (top - hang_r) * ramp,
                     bend_l, bend_r, zeros.copy(), zeros.copy())  # fmt: skip
    if label == "squat_down":
        ramp = _figure_progress(rng, frames, style.tempo)
        depth = float(rng.uniform(0.6, 0.9))
        # arms lift forward-out for balance as the hips go down
        lift = float(rng.uniform(40.0, 70.0)) * ramp
        return _Pose(hang_l + lift, hang_r + lift, bend_l + 0.5 * lift, bend_r + 0.5 * lift,
                     depth * ramp, zeros.copy())  # fmt: skip
    if label == "bend_down":
        ramp = _figure_progress(rng, frames, style.tempo)
        depth = float(rng.uniform(0.65, 0.95))
        return _Pose(hang_l, hang_r, bend_l, bend_r, zeros.copy(), depth * ramp)
    t = np.arange(frames, dtype=np.float64)
    cycles = float(rng.uniform(2.0, 4.0))  # periodic: every phase is equally likely
    phase = 2.0 * math.pi * (cycles * t / frames + rng.random())
    if label == "wave":
        upper = float(rng.uniform(120.0, 150.0))
        swing = float(rng.uniform(25.0, 40.0))
        elbow = float(rng.uniform(-15.0, 15.0)) + swing * np.sin(phase)
        return _Pose(hang_l, upper * np.ones(frames), bend_l, elbow, zeros.copy(), zeros.copy())
    if label == "clap":
        upper = float(rng.uniform(40.0, 55.0)) + 10.0 * np.sin(phase)
        elbow = float(rng.uniform(80.0, 95.0)) + 25.0 * np.sin(phase)
        return _Pose(upper, upper.copy(), elbow, elbow.copy(), zeros.copy(), zeros.copy())
    raise ValueError(f"unknown class {label!r}; choose from {list(PEOPLE_CLASSES)}")


def _knee(hip: np.ndarray, foot: np.ndarray, segment: float, outward: float) -> np.ndarray:
    """Knee of a two-segment leg from ``hip`` to ``foot``, bent towards ``outward`` (+-1 in x)."""
    span = foot - hip
    distance = float(np.hypot(*span))
    mid = hip + span / 2
    lift = math.sqrt(max(segment**2 - (distance / 2) ** 2, 0.0))
    normal = np.array([span[1], -span[0]]) / max(distance, 1e-6)
    if normal[0] * outward < 0:
        normal = -normal
    return mid + lift * normal


def _draw_figure(
    background: np.ndarray, pose: _Pose, style: FigureStyle, cx: float, size: int
) -> np.ndarray:
    """Composite the figure over the background for every frame -> float32 (T, S, S, 3)."""
    frames = len(pose.squat)
    h = style.height
    ground = style.ground * size
    thick = max(2, round(style.limb * h * (1 << _SHIFT)))
    leg = 0.46 * h  # hip to foot, two equal segments
    torso, upper_arm, forearm, head = 0.30 * h, 0.16 * h, 0.15 * h, 0.075 * h
    colours = {
        name: np.asarray(rgb, dtype=np.float32)
        for name, rgb in (("shirt", style.shirt), ("trousers", style.trousers),
                          ("skin", style.skin))
    }  # fmt: skip
    video = np.empty((frames, size, size, 3), dtype=np.float32)
    video[:] = background
    masks = {name: np.zeros((size, size), dtype=np.uint8) for name in colours}

    def line(mask: np.ndarray, a: np.ndarray, b: np.ndarray, width: int = thick) -> None:
        pa, pb = _fixed(a), _fixed(b)
        cv2.line(mask, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 255,
                 max(1, width >> _SHIFT), lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip

    for t in range(frames):
        for mask in masks.values():
            mask[:] = 0
        feet = [np.array([cx + side * 0.09 * h, ground]) for side in (-1, 1)]
        hip_y = ground - leg * (1.0 - 0.5 * pose.squat[t])
        hips = [np.array([cx + side * 0.06 * h, hip_y]) for side in (-1, 1)]
        for side, hip, foot in zip((-1, 1), hips, feet, strict=True):
            knee = _knee(hip, foot, leg / 2, side)
            line(masks["trousers"], hip, knee)
            line(masks["trousers"], knee, foot)
        # bending towards the camera foreshortens the torso and lowers the head onto it
        fold = 1.0 - 0.6 * pose.bend[t]
        neck = np.array([cx, hip_y - torso * fold])
        shoulders = [neck + np.array([side * 0.11 * h, 0.02 * h]) for side in (-1, 1)]
        body = np.array([shoulders[0], shoulders[1], hips[1], hips[0]])
        cv2.fillPoly(masks["shirt"], [_fixed(body)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        arms = ((pose.left_arm[t], pose.left_elbow[t]), (pose.right_arm[t], pose.right_elbow[t]))
        for side, shoulder, (arm, elbow_bend) in zip((-1, 1), shoulders, arms, strict=True):
            a = math.radians(arm)
            elbow = shoulder + upper_arm * np.array([side * math.sin(a), math.cos(a)])
            b = a - math.radians(elbow_bend)  # towards the midline
            hand = elbow + forearm * np.array([side * math.sin(b), math.cos(b)])
            line(masks["shirt"], shoulder, elbow)
            line(masks["skin"], elbow, hand)
        centre = neck - np.array([0.0, (0.03 * h + head) * (1.0 - 0.8 * pose.bend[t])])
        c = _fixed(centre)
        cv2.circle(masks["skin"], (int(c[0]), int(c[1])), round(head * (1 << _SHIFT)), 255, -1,
                   lineType=cv2.LINE_AA, shift=_SHIFT)  # fmt: skip
        frame = video[t]
        for name in ("trousers", "shirt", "skin"):  # later parts in front
            weight = masks[name].astype(np.float32) * np.float32(1 / 255)
            frame += weight[..., None] * (colours[name] - frame)
    return video


def _render_people(
    label: str, actor: int, config: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    style = figure_style(actor, config)
    if config.shared_scene:
        # the same room for everyone; only the light changes from clip to clip
        background = _background(config, _rng(config, 7)) * np.float32(rng.uniform(0.85, 1.15))
    else:
        background = _background(config, rng)
    # the actor's usual place, moved a little per clip
    reach = 0.45 * style.height + _MARGIN
    cx = style.centre_x * config.size + rng.normal(0.0, 0.04) * config.size
    cx = float(np.clip(cx, reach, config.size - reach))
    pose = _pose(label, style, config.num_frames, rng)
    return _draw_figure(background, pose, style, cx, config.size)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Zero-mean triangular noise (sum of two uniform bytes) with standard deviation ``std``.

    Four times faster than Gaussian samples, which otherwise took half of a clip's render time.
    """
    count = math.prod(shape)
    pairs = np.frombuffer(rng.bytes(2 * count), dtype=np.uint8).reshape(2, *shape)
    noise = pairs[0].astype(np.float32)
    noise += pairs[1]
    noise -= np.float32(255.0)
    noise *= np.float32(std / math.sqrt(2 * (256**2 - 1) / 12))
    return noise


def render_clip(label: str, actor: int, clip: int, config: SynthConfig | None = None) -> np.ndarray:
    """Render one clip as ``uint8 (T, S, S, 3)`` RGB; identical bytes for identical arguments.

    ``actor`` and ``clip`` are 1-based. A class that is the reversal of another is rendered as
    a clip of that other class (drawn from this clip's own random stream), frame-reversed.
    """
    config = config or SynthConfig()
    known = _KINDS[config.kind]
    if label not in known:
        raise ValueError(f"unknown {config.kind} class {label!r}; choose from {list(known)}")
    if clip < 1:
        raise ValueError(f"clips are numbered from 1, got {clip}")
    forward = _REVERSED_OF.get(label, label)
    if config.kind == "people":
        rng = _rng(config, 4, known.index(label), actor, clip)
        video = _render_people(forward, actor, config, rng)
    else:
        style = actor_style(actor, config)
        rng = _rng(config, 3, known.index(label), actor, clip)
        background = _background(config, rng)
        video = _draw(background, _track(forward, style, config, rng), style)
    if config.noise_std > 0:
        video += _noise(rng, video.shape, config.noise_std)
    if forward != label:
        # reversing after the noise keeps the whole clip an exact reversal of a forward clip
        video = video[::-1]
    np.clip(video, 0.0, 255.0, out=video)
    video += np.float32(0.5)  # then truncation rounds to nearest
    return np.ascontiguousarray(video.astype(np.uint8))


# ----------------------------------------------------------------------------------------------
# Video writing


def _encoder_works(name: str) -> bool:
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 32, 32, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25, 1)
        ctx.open()
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        ctx.encode(frame.reformat(format="yuv420p"))
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


# ----------------------------------------------------------------------------------------------
# Dataset


def clip_filename(label: str, actor: int, clip: int, container: str = "mp4") -> str:
    """``<class>_a<actor:02d>_c<clip:02d>.<container>``."""
    return f"{label}_a{actor:02d}_c{clip:02d}.{container}"


_STAMP = "synth_config.json"


def render_dataset(
    out_dir: str | os.PathLike[str],
    config: SynthConfig | None = None,
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
                target, frames, config.fps, config.codec,
                container=config.container, bframes=config.bframes, crf=config.crf,
            )  # fmt: skip
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
