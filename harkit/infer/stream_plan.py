"""How a stream samples its frames: the frame jump and window, derived from how the run was
trained, so a window looks like a training clip.

Stride sampling keeps its stride; ``uniform``/``tsn`` sampling of N frames over a whole clip
uses the window N and the frame jump round(F / N), F being the typical training clip length in
frames (``run.json``'s ``train_clips``, else the median of a few training videos when the
recorded dataset is readable). A file of known length up to two such clips long (any length
when F is unknown) is sampled exactly as ``predict`` samples it, so its final decision is
predict's answer; so is a file of segment (3D) steps that fits the window or two training clips
(all its segments, the last one padded as predict pads it); a live source without F falls back
to consecutive frames and says so. ``--window``/``--frame-jump`` override; another frame jump
than the run's makes each step span another time than in training (the model sees motion
faster or slower), and the reason says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harkit.data.sampling import sample_indices
from harkit.infer.decoder import ResetPolicy
from harkit.infer.engine import StreamEngineName
from harkit.infer.errors import InferenceError
from harkit.infer.flow import FlowComputer, pair_frames
from harkit.infer.pipeline import SplitModel
from harkit.infer.sources import FrameSource
from harkit.infer.training_clip import training_clip_length
from harkit.train.run_info import RunInfo

__all__ = ["StreamConfig", "StreamPlan", "flow_plan", "plan_stream"]


@dataclass
class StreamConfig:
    """How a stream is decoded and decided on (``None``: derived from the recipe)."""

    mode: Literal["auto", "incremental", "windowed"] = "auto"
    window: int | None = None
    """Steps per window / reset period; default: the recipe's clip length (see
    :func:`plan_stream`)."""
    hop: int = 4
    """Windowed mode: re-run the head every ``hop`` sampled steps."""
    warmup: int | None = None
    """Sampled steps before the first label (default: the window, a training clip's steps);
    0: a label from the first step."""
    frame_jump: int | None = None
    """Sample every n-th frame; default: derived from the run's training (:func:`plan_stream`)."""
    reset: ResetPolicy = "staggered"
    smoothing: float = 0.5
    switch_margin: float = 0.1
    switch_patience: int = 3
    late_frames: float = 2.0
    """Real time: drop a frame read more than this many frame intervals after its time."""
    max_frames: int | None = None
    engine: StreamEngineName = "auto"
    """Per-frame CNN path (:mod:`harkit.infer.engine`): ``auto`` (onnxruntime on a CPU for
    fast frame encoders), ``onnx``, ``int8`` (explicit only) or ``torch`` (the encoder's own)."""


def _recipe_window(model: SplitModel) -> int:
    s = model.recipe.input.sampling
    if s.strategy in ("uniform", "tsn"):
        return s.num_frames
    if s.strategy == "segments":
        return s.max_segments or 8
    return s.max_frames or 16


@dataclass(frozen=True)
class StreamPlan:
    """Which frames a stream samples, and why (the summary's ``sampling``)."""

    frame_jump: int
    window: int
    reason: str
    targets: tuple[int, ...] | None = None
    """Exact frame indices to sample (a file sampled as predict does), in order; an index
    repeats where predict pads a short video."""
    num_frames: int | None = None
    """The file's frame count the exact ``targets`` were drawn from."""


def _nth(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def plan_stream(
    model: SplitModel,
    config: StreamConfig | None = None,
    source: FrameSource | None = None,
    run_info: RunInfo | None = None,
) -> StreamPlan:
    """The frame jump and window a stream uses, derived from how the run was trained.

    * stride sampling: its stride, window ``max_frames`` (16 without one);
    * ``uniform``/``tsn`` N frames over a whole clip: window N and a frame jump that spreads
      them over a typical training clip of F frames, round(F / N)
      (:func:`training_clip_length`, rescaled to the source's frame rate). A file of known
      length up to two typical clips long (any length when F is unknown) is one clip: its
      frames are the ones predict samples (``targets``), so the stream's final decision is
      predict's. A live source without F samples consecutive frames and the reason says so;
    * ``segments``: consecutive frames; a file whose segments fit the window, or up to two
      typical clips long, is sampled as predict samples it (window: its segment count, so
      the recurrent state is not reset before its end);
    * ``all``: consecutive frames.

    ``config.window`` / ``config.frame_jump`` override (an explicit value turns the exact
    file sampling off, since it asks for evenly spaced frames).
    """
    config = config or StreamConfig()
    s = model.recipe.input.sampling
    window = config.window or _recipe_window(model)
    jump_given, window_given = config.frame_jump, config.window
    targets: tuple[int, ...] | None = None
    total: int | None = None
    spread = False  # the jump spreads predict's picks over the file: it varies by a frame
    if s.strategy in ("uniform", "tsn"):
        n = s.num_frames
        clip = training_clip_length(run_info)
        typical = clip.at(source.fps if source is not None else None) if clip else None
        total = source.num_frames if source is not None else None
        if total and (typical is None or total <= 2 * typical):
            jump, spread = max(1, round(total / n)), True
            why = (
                f"from the file: {s.strategy} {n} frames over its {total} frames, as "
                "predict samples it ("
                + (
                    "the run records no training clip length)"
                    if typical is None
                    else f"one clip: training clips are ~{typical:.0f} frames)"
                )
            )
            if jump_given is None and window_given is None:
                sampled = sample_indices(total, s)
                targets = tuple(int(i) for i in sampled.indices)
            elif jump_given is None:  # --window asks for evenly spaced frames
                why = f"from the file: every {_nth(jump)} frame spreads {n} over its {total}"
        elif typical is not None:
            jump = max(1, round(typical / n))
            origin = clip.origin if clip is not None else ""
            why = (
                f"from the run: {s.strategy} {n} frames over ~{typical:.0f}-frame clips ({origin})"
            )
        else:
            jump = 1
            why = (
                f"consecutive frames: the run ({s.strategy} {n} frames per clip) records no "
                "training clip length and its dataset is not readable here; pass "
                f"--frame-jump (about clip frames / {n}) to match training"
            )
    elif s.strategy == "stride":
        jump = s.stride
        why = f"from the run: every {_nth(s.stride)} frame (stride sampling)"
    elif s.strategy == "segments":
        jump = 1
        why = f"from the run: consecutive {s.segment_length}-frame segments"
        total = source.num_frames if source is not None else None
        clip = training_clip_length(run_info)
        typical = clip.at(source.fps if source is not None else None) if clip else None
        if total and jump_given is None and window_given is None:
            sampled = sample_indices(total, s)
            # one clip: no more segments than the window, or up to two training clips long
            if sampled.length <= window or (typical is not None and total <= 2 * typical):
                targets = tuple(int(i) for i in sampled.indices.reshape(-1))
                window = sampled.length  # no state reset before the end, as predict
                why = (
                    f"from the file: its {sampled.length} {s.segment_length}-frame segments "
                    "(the last one padded), as predict samples it"
                )
    else:
        jump = 1
        why = "from the run: every frame"
    if jump_given is not None:
        # a step then spans another time than in training: motion per step scales with it
        speed = ""
        if jump_given != jump:
            ratio = jump_given / jump
            speed = (
                f" (motion per step {1 / ratio:.3g}x slower than training's)"
                if ratio < 1
                else f" (motion per step {ratio:.3g}x faster than training's)"
            )
        default = f"every {'~' if spread else ''}{_nth(jump)} frame"
        why = f"--frame-jump {jump_given} given{speed}; the run's default, {default}: {why}"
        jump = jump_given
    if window_given is not None:
        why = f"--window {window_given} given; " + why
    if model.flow is not None:  # pairs start at sampled frames, whatever the jump
        method = model.flow.config.method
        why += f"; {method} flow from each sampled frame to the next, as in training"
    return StreamPlan(
        frame_jump=jump,
        window=window,
        reason=why,
        targets=targets,
        num_frames=total if targets else None,
    )


def flow_plan(
    flow: FlowComputer, plan: StreamPlan, model: SplitModel
) -> tuple[int, set[int] | None]:
    """(frames from a pair's first frame to its second, the first frames of training's pairs
    on an exact plan or None) for a flow-stream model."""
    config = flow.config.sampling
    if config is not None and config.strategy != "stride":
        raise InferenceError(
            f"streaming computes flow frame by frame: flow files sampled '{config.strategy}' "
            "cannot be reproduced live (use flow over every frame, or --stride)"
        )
    gap = config.stride if config is not None else 1
    if not plan.targets:
        return gap, None
    starts = pair_frames(plan.num_frames or max(plan.targets) + 1, flow.config)
    if len(starts) < 2:
        return gap, None
    picks = sample_indices(len(starts) - 1, model.recipe.input.sampling)
    return gap, {int(starts[k]) for k in picks.indices[picks.mask].reshape(-1)}
