"""The ``shapes`` kind: coloured shapes move, grow, rotate, fade, blink or shake over varied
backgrounds (small and fast; pixel descriptors such as ``tiny_image`` suffice)."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from harkit.synth.config import SYNTH_CLASSES, SynthConfig
from harkit.synth.scene import MARGIN, SHIFT, fixed_point, make_background, random_stream

__all__ = ["SHAPES", "ActorStyle", "actor_style", "render_shapes"]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "diamond", "star", "hexagon")
_MARKER_RGB = np.array([255.0, 255.0, 255.0], dtype=np.float32)


@dataclass(frozen=True)
class ActorStyle:
    """How one actor (group) looks: the same in every clip of every class."""

    shape: str
    color: tuple[int, int, int]  # RGB
    radius: float  # outer radius in pixels at scale 1


def actor_style(actor: int, config: SynthConfig) -> ActorStyle:
    """The look of 1-based ``actor``: shape, saturated colour and size, fixed by the seed."""
    if actor < 1:
        raise ValueError(f"actors are numbered from 1, got {actor}")
    order = random_stream(config, 0).permutation(len(SHAPES))
    rng = random_stream(config, 1, actor)
    shape = SHAPES[int(order[(actor - 1) % len(SHAPES)])]
    hue = (random_stream(config, 2).random() + (actor - 1) * 0.618034) % 1.0
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
            [
                [1, -w],
                [1, w],
                [w, w],
                [w, 1],
                [-w, 1],
                [-w, w],
                [-1, w],
                [-1, -w],
                [-w, -w],
                [-w, -1],
                [w, -1],
                [w, -w],
            ],
            dtype=np.float64,
        ) / math.hypot(1.0, w)
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
        reach = style.radius * max_scale + MARGIN
        return float(rng.uniform(reach, size - reach))

    angle0 = float(rng.uniform(0.0, 360.0))
    if label in ("move_right", "move_down"):
        reach = style.radius + MARGIN
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
        reach = style.radius + MARGIN
        cx, cy = centre(1.0), centre(1.0)
        jitter = np.clip(rng.normal(0.0, amp, size=(frames, 2)), -2 * amp, 2 * amp)
        x = np.clip(cx + jitter[:, 0], reach, size - reach)
        y = np.clip(cy + jitter[:, 1], reach, size - reach)
        angle = angle0 + rng.normal(0.0, 10.0, size=frames)
        return _Track(x, y, ones.copy(), angle, ones.copy())
    raise ValueError(f"unknown class {label!r}; choose from {list(SYNTH_CLASSES)}")


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
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        centre = np.array([track.cx[t], track.cy[t]])
        points = outline @ rot.T * radius + centre
        # only the object's bounding box is touched: compositing whole frames dominated the time
        x0, y0 = np.maximum(np.floor(centre - radius) - 2, 0).astype(int)
        x1, y1 = np.minimum(np.ceil(centre + radius) + 3, size).astype(int)
        box = (slice(y0, y1), slice(x0, x1))
        body[box] = 0
        cv2.fillPoly(body, [fixed_point(points)], 255, lineType=cv2.LINE_AA, shift=SHIFT)
        # an off-centre white dot makes the orientation (and rotation) visible for every shape
        dot = fixed_point(centre + rot @ np.array([0.45 * radius, 0.0]))
        mark[box] = 0
        cv2.circle(
            mark,
            (int(dot[0]), int(dot[1])),
            round(0.2 * radius * (1 << SHIFT)),
            255,
            -1,
            lineType=cv2.LINE_AA,
            shift=SHIFT,
        )
        frame = video[t][box]
        scale = np.float32(track.alpha[t] / 255.0)
        frame += (body[box].astype(np.float32) * scale)[..., None] * (color - frame)
        frame += (mark[box].astype(np.float32) * scale)[..., None] * (_MARKER_RGB - frame)
    return video


def render_shapes(
    label: str, actor: int, config: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    """One clip of forward class ``label`` by ``actor`` as float32 ``(T, S, S, 3)``, before
    noise; ``rng`` is the clip's random stream."""
    style = actor_style(actor, config)
    background = make_background(config, rng)
    return _draw(background, _track(label, style, config, rng), style)
