"""The ``people`` kind: articulated figures (head, torso, two-segment arms and legs; clothes,
skin, size, place and tempo differ per actor) raise and lower their arms, squat, bend, wave or
clap over textured backgrounds, so that ImageNet features describe their pose."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from harkit.synth.config import PEOPLE_CLASSES, SynthConfig
from harkit.synth.scene import MARGIN, SHIFT, fixed_point, make_background, random_stream

__all__ = ["FigureStyle", "figure_style", "render_people"]


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
    rng = random_stream(config, 5, actor)
    hue = random_stream(config, 6).random()
    hue = (hue + (actor - 1) * 0.618034) % 1.0  # well-spread shirt hues
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
        return _Pose(
            hang_l + (top - hang_l) * ramp,
            hang_r + (top - hang_r) * ramp,
            bend_l,
            bend_r,
            zeros.copy(),
            zeros.copy(),
        )
    if label == "squat_down":
        ramp = _figure_progress(rng, frames, style.tempo)
        depth = float(rng.uniform(0.6, 0.9))
        # arms lift forward-out for balance as the hips go down
        lift = float(rng.uniform(40.0, 70.0)) * ramp
        return _Pose(
            hang_l + lift,
            hang_r + lift,
            bend_l + 0.5 * lift,
            bend_r + 0.5 * lift,
            depth * ramp,
            zeros.copy(),
        )
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
    thick = max(2, round(style.limb * h * (1 << SHIFT)))
    leg = 0.46 * h  # hip to foot, two equal segments
    torso, upper_arm, forearm, head = 0.30 * h, 0.16 * h, 0.15 * h, 0.075 * h
    colours = {
        name: np.asarray(rgb, dtype=np.float32)
        for name, rgb in (
            ("shirt", style.shirt),
            ("trousers", style.trousers),
            ("skin", style.skin),
        )
    }
    video = np.empty((frames, size, size, 3), dtype=np.float32)
    video[:] = background
    masks = {name: np.zeros((size, size), dtype=np.uint8) for name in colours}

    def line(mask: np.ndarray, a: np.ndarray, b: np.ndarray, width: int = thick) -> None:
        pa, pb = fixed_point(a), fixed_point(b)
        cv2.line(
            mask,
            (int(pa[0]), int(pa[1])),
            (int(pb[0]), int(pb[1])),
            255,
            max(1, width >> SHIFT),
            lineType=cv2.LINE_AA,
            shift=SHIFT,
        )

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
        cv2.fillPoly(masks["shirt"], [fixed_point(body)], 255, lineType=cv2.LINE_AA, shift=SHIFT)
        arms = ((pose.left_arm[t], pose.left_elbow[t]), (pose.right_arm[t], pose.right_elbow[t]))
        for side, shoulder, (arm, elbow_bend) in zip((-1, 1), shoulders, arms, strict=True):
            a = math.radians(arm)
            elbow = shoulder + upper_arm * np.array([side * math.sin(a), math.cos(a)])
            b = a - math.radians(elbow_bend)  # towards the midline
            hand = elbow + forearm * np.array([side * math.sin(b), math.cos(b)])
            line(masks["shirt"], shoulder, elbow)
            line(masks["skin"], elbow, hand)
        centre = neck - np.array([0.0, (0.03 * h + head) * (1.0 - 0.8 * pose.bend[t])])
        c = fixed_point(centre)
        cv2.circle(
            masks["skin"],
            (int(c[0]), int(c[1])),
            round(head * (1 << SHIFT)),
            255,
            -1,
            lineType=cv2.LINE_AA,
            shift=SHIFT,
        )
        frame = video[t]
        for name in ("trousers", "shirt", "skin"):  # later parts in front
            weight = masks[name].astype(np.float32) * np.float32(1 / 255)
            frame += weight[..., None] * (colours[name] - frame)
    return video


def render_people(
    label: str, actor: int, config: SynthConfig, rng: np.random.Generator
) -> np.ndarray:
    """One clip of forward class ``label`` by ``actor`` as float32 ``(T, S, S, 3)``, before
    noise; ``rng`` is the clip's random stream."""
    style = figure_style(actor, config)
    if config.shared_scene:
        # the same room for everyone; only the light changes from clip to clip
        room = make_background(config, random_stream(config, 7))
        background = room * np.float32(rng.uniform(0.85, 1.15))
    else:
        background = make_background(config, rng)
    # the actor's usual place, moved a little per clip
    reach = 0.45 * style.height + MARGIN
    cx = style.centre_x * config.size + rng.normal(0.0, 0.04) * config.size
    cx = float(np.clip(cx, reach, config.size - reach))
    pose = _pose(label, style, config.num_frames, rng)
    return _draw_figure(background, pose, style, cx, config.size)
