"""Continuous recognition on a video stream: a file, a webcam or a network URL.

Two decoders, chosen per model (``mode='auto'``):

* **incremental** (streamable models: a per-frame/per-segment encoder and a unidirectional
  head): every sampled frame goes once through the CNN and once through ``head.step`` with the
  kept recurrent state, O(1) work per frame, and every step yields a decision.
* **windowed** (bidirectional heads such as corehar's BiLSTM, seed 003's 3D CNN): the features
  of the last ``window`` sampled frames are kept (each frame still goes through the CNN only
  once) and the head re-runs over that window every ``hop`` sampled frames. Clip encoders (3D
  CNN over the whole clip) keep the last ``window`` raw frames instead.

Only every ``frame_jump``-th frame is sampled, as :func:`~harkit.infer.stream_plan.plan_stream`
derives it from how the run was trained, so a window looks like a training clip; the summary's
``sampling`` says what was used and why.

Warm-up and the end: a decision has no label (``Decision.label`` None, ``warming_up``) until
the stream has taken ``warmup`` sampled steps, by default the window (a training clip's
steps): fewer steps than the head was trained on give a confident guess, not an answer.
Warm-up probabilities do not enter the smoothing. A source that ends (a file) gets a final
decision on everything it held (:meth:`StreamRecognizer.finish`; labelled whatever the
warm-up): on an exact plan the one at its last sampled frame, equal to predict's answer.

The pieces: :mod:`harkit.infer.sources` (file, camera, URL), :mod:`harkit.infer.decoder`
(incremental head stepping and its state reset policy), :mod:`harkit.infer.smoothing`
(decisions, EMA + hysteresis), :mod:`harkit.infer.video_out` (annotated output video),
:mod:`harkit.infer.stream_plan` (which frames are sampled). This module runs the recognizer
and the real-time loop.

Real time: with ``realtime=True`` a file is played at its native frame rate; live sources
(cameras, URLs) always are real time. A frame that is already more than ``late_frames`` frame
intervals behind the source clock when it is read is dropped unprocessed (counted in
``frames_dropped``), so a slow model skips frames instead of lagging further and further.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from harkit.infer.decoder import IncrementalDecoder
from harkit.infer.engine import stream_engine
from harkit.infer.errors import InferenceError
from harkit.infer.flow import FlowComputer
from harkit.infer.pipeline import SplitModel
from harkit.infer.smoothing import Decision, LabelSmoother
from harkit.infer.sources import Frame, FrameSource, ReadAhead
from harkit.infer.stream_plan import StreamConfig, StreamPlan, flow_plan, plan_stream
from harkit.infer.video_out import AnnotatedWriter
from harkit.train.run_info import RunInfo

__all__ = ["StreamRecognizer", "StreamStats", "run_stream"]

log = logging.getLogger(__name__)


class StreamRecognizer:
    """The decoding core without I/O: ``push(frame)`` -> a :class:`Decision` or None, and
    ``finish()`` at the end of a file -> its final decision.

    Warm-up: a decision has no label (``label`` None, ``warming_up``) until the stream has
    taken ``config.warmup`` sampled steps (default: the window, one training clip's steps),
    except the final one; warm-up probabilities do not enter the label smoothing.
    """

    def __init__(
        self,
        model: SplitModel,
        config: StreamConfig | None = None,
        plan: StreamPlan | None = None,
    ) -> None:
        self.model = model
        self.config = config = config or StreamConfig()
        self.plan = plan = plan or plan_stream(model, config)
        self.jump = plan.frame_jump
        self.window = plan.window
        self.warmup = self.window if config.warmup is None else max(0, config.warmup)
        # Exact sampling: how often each frame index is taken. Clip encoders see predict's
        # padded clip (a short video's last frame repeated); per-step heads its valid steps.
        self._targets: dict[int, int] = {}
        for i in plan.targets or ():
            self._targets[i] = self._targets.get(i, 0) + 1
        self._last_target = max(self._targets) if self._targets else None
        self._seen = 0
        mode = config.mode
        if mode == "auto":
            mode = "incremental" if model.streamable else "windowed"
        if mode == "incremental" and not model.streamable:
            raise InferenceError(
                f"recipe '{model.recipe.name}' cannot stream frame by frame (bidirectional head "
                "or whole-clip 3D CNN); use windowed mode"
            )
        if model.head_runner is not None or any(b.runner for b in model.encoder.branches):
            raise InferenceError("streaming runs on the PyTorch engine only")
        # the fast batch-1 frame path, or None: the encoder's own (see harkit.infer.engine)
        self.engine = stream_engine(model, config.engine) if model.encoder.per_step else None
        self.mode = mode
        self.segment = model.segment_length or 1
        self.hop = max(1, config.hop)
        self.decoder = (
            IncrementalDecoder(model.head, self.window, config.reset)
            if mode == "incremental"
            else None
        )
        self.buffer: deque = deque(maxlen=self.window)
        self.smoother = LabelSmoother(
            config.smoothing, config.switch_margin, config.switch_patience
        )
        self._segment: list[np.ndarray] = []
        # Flow-stream models: as in training, the flow of sampled frame t is the pair from t to
        # the next frame of the flow files (t + 1, or t + stride for strided flow files), so
        # a step's RGB waits for its flow. On an exact plan the pairs are training's picks.
        self.flow = FlowComputer(model.flow) if model.flow is not None else None
        self._flow_gap = 1
        self._flow_targets: set[int] | None = None
        if self.flow is not None:
            self._flow_gap, self._flow_targets = flow_plan(self.flow, plan, model)
        self._flow_from: tuple[int, np.ndarray] | None = None  # (frame, gray) of an open pair
        self._flow_segment: list[np.ndarray] = []
        self._flow_steps: deque[np.ndarray] = deque()
        self._rgb_steps: deque[np.ndarray] = deque()
        # the frame that completes an exact plan's last step (its last flow pair may end later)
        self._final_frame = self._last_target
        if self._flow_targets and self._last_target is not None:
            self._final_frame = max(self._last_target, max(self._flow_targets) + self._flow_gap)
        self._since_sample = self.jump  # the first frame is sampled
        self._last: tuple[int, float] | None = None  # (index, time) of the last frame pushed
        self._logits: Tensor | None = None  # the incremental decoder's latest answer
        self._final_given = False
        self.steps = 0
        self.frames_encoded = 0

    def wants(self, index: int | None = None) -> bool:
        """Whether the next frame (source index ``index``) will be sampled (the others cost
        nothing)."""
        if self._last_target is not None:
            return (self._seen if index is None else index) in self._targets
        return self._since_sample >= self.jump

    def push(self, frame: Frame) -> Decision | None:
        """Take one frame of the source (all frames, in order)."""
        start = time.perf_counter()
        wanted = self.wants(frame.index)
        if self.flow is not None:
            self._push_flow(frame, wanted)
        self._seen = frame.index + 1
        self._last = (frame.index, frame.time)
        final = frame.index == self._final_frame
        if wanted:
            self._since_sample = 1
            repeats = 1
            if self._last_target is not None and not self.model.encoder.per_step:
                repeats = self._targets[frame.index]
            for _ in range(repeats):
                self._segment.append(frame.image)
                if len(self._segment) == self.segment:
                    self._close_segment()
        else:
            self._since_sample += 1
        if final:  # predict pads a short last segment: its last frame (pair) repeated
            self._pad_segments()
        logits = self._run_ready(final)
        if logits is None:
            return None
        return self._decision(logits, final, start)

    def finish(self) -> Decision | None:
        """The end of a file (a source that ended): its final decision, labelled whatever
        the warm-up, on every step it could take; None when the final decision was given
        already or nothing was decided. A short last segment is padded as predict pads it;
        a step whose flow pair never closed is dropped (predict cuts to the shorter stream).
        """
        if self._final_given or self._last is None:
            return None
        start = time.perf_counter()
        self._pad_segments()
        logits = self._run_ready(final=True)
        if logits is None:
            if not self.steps:
                return None
            logits = self._logits if self.decoder is not None else self._window_logits()
        assert logits is not None
        return self._decision(logits, True, start)

    def _decision(self, logits: Tensor, final: bool, start: float) -> Decision:
        assert self._last is not None
        index, timestamp = self._last
        probs = torch.softmax(logits.float(), dim=-1).numpy()
        raw = int(probs.argmax())
        classes = self.model.classes
        common = {
            "timestamp": timestamp,
            "frame": index,
            "final": final,
            "steps": self.steps,
            "warmup_steps": self.warmup,
            "probs": probs,
        }
        if not final and self.steps < self.warmup:  # less than a training clip: no label
            return Decision(
                label=None,
                confidence=None,
                raw_label=None,
                raw_confidence=None,
                latency_ms=(time.perf_counter() - start) * 1000.0,
                **common,
            )
        shown, smoothed = self.smoother.update(probs)
        if final:  # the whole-clip answer (predict's): no smoothing lag, no hysteresis
            shown, smoothed = raw, probs
            self._final_given = True
        return Decision(
            label=classes[shown],
            confidence=float(smoothed[shown]),
            raw_label=classes[raw],
            raw_confidence=float(probs[raw]),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            **common,
        )

    def _close_segment(self) -> None:
        """The RGB frames gathered so far are one step."""
        images = np.stack(self._segment)
        self._segment = []
        self._rgb_steps.append(images[None] if self.segment > 1 else images)

    def _close_flow_segment(self) -> None:
        planes = np.stack(self._flow_segment)
        self._flow_segment = []
        self._flow_steps.append(planes[None] if self.segment > 1 else planes)

    def _pad_segments(self) -> None:
        """Fill a short last RGB / flow segment with its last frame / pair (predict's padding)."""
        if self._segment:
            self._segment += [self._segment[-1]] * (self.segment - len(self._segment))
            self._close_segment()
        if self._flow_segment:
            self._flow_segment += [self._flow_segment[-1]] * (
                self.segment - len(self._flow_segment)
            )
            self._close_flow_segment()

    def _run_ready(self, final: bool) -> Tensor | None:
        """Step every RGB step whose flow is there (flow models: a step's flow needs the frame
        after its last one); the last one of a final push decides whatever the hop."""
        logits = None
        while self._rgb_steps and (self.flow is None or self._flow_steps):
            images = self._rgb_steps.popleft()
            flow = self._flow_steps.popleft() if self.flow is not None else None
            more = self._rgb_steps and (self.flow is None or self._flow_steps)
            out = self._step(images, final=final and not more, flow=flow)
            logits = out if out is not None else logits
        return logits

    def _push_flow(self, frame: Frame, sampled: bool) -> None:
        """Close the open pair when its second frame arrives; open one at a frame whose flow
        a step needs. Pairs are grouped into steps like the RGB frames."""
        assert self.flow is not None
        gray = None
        if self._flow_from is not None and frame.index >= self._flow_from[0] + self._flow_gap:
            if frame.index == self._flow_from[0] + self._flow_gap:  # else: frames went missing
                gray = self.flow.gray(frame.image)
                pair = self.flow.pairs(np.stack([self._flow_from[1], gray]))[0]
                self._flow_segment.append(pair)
                if len(self._flow_segment) == self.segment:
                    self._close_flow_segment()
            self._flow_from = None
        opens = sampled if self._flow_targets is None else frame.index in self._flow_targets
        if opens:
            self._flow_from = (
                frame.index,
                gray if gray is not None else self.flow.gray(frame.image),
            )

    def _step(
        self, images: np.ndarray, final: bool = False, flow: np.ndarray | None = None
    ) -> Tensor | None:
        """One sampled step; ``final``: the last one of the file, always decided."""
        encoder = self.model.encoder
        self.steps += 1
        if not encoder.per_step:  # whole-clip CNN: keep raw frames, encode each window
            self.buffer.append(images[0])
            due = not (self.steps - 1) % self.hop and len(self.buffer) >= min(8, self.window)
            return self._window_logits() if due or final else None
        if self.engine is not None and flow is None:
            feats = self.engine.encode(images)  # (1, D): this step's frame, once
        else:
            feats = encoder.encode(images, flow)  # (1, D): this step's frame / segment, once
        self.frames_encoded += 1
        if self.decoder is not None:
            self._logits = self.decoder.push(feats)
            return self._logits
        self.buffer.append(feats[0])
        if (self.steps - 1) % self.hop and not final:
            return None
        return self._window_logits()

    def _window_logits(self) -> Tensor:
        """Windowed mode: the head over the kept window (clip encoders: its raw frames)."""
        if not self.model.encoder.per_step:
            frames = list(self.buffer)
            # a file's end may come before 8 frames: the 3D CNN needs them, predict pads so
            frames += frames[-1:] * (min(8, self.window) - len(frames))
            self.frames_encoded += len(self.buffer)
            feats = self.model.encoder.encode(np.stack(frames))
            return self.model.head_logits(feats[None])[0]
        return self.model.head_logits(torch.stack(tuple(self.buffer))[None])[0]


@dataclass
class StreamStats:
    """Summary of a stream run (printed / emitted as the last JSON line)."""

    source: str
    mode: str
    frame_jump: int
    window: int
    sampling: str = ""
    """Why this frame jump and window (see :func:`plan_stream`)."""
    frames_read: int = 0
    frames_encoded: int = 0
    frames_dropped: int = 0
    decisions: int = 0
    warmup_decisions: int = 0
    """Decisions without a label: the stream had not yet taken ``warmup_steps`` steps."""
    warmup_steps: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    fps: float = 0.0
    """Frames read (processed or skipped by the frame jump) per wall second."""
    source_fps: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    """Per sampled frame: CNN + head (+ window re-run when one is due)."""
    decision_latency_ms_p50: float = 0.0
    decision_latency_ms_p95: float = 0.0
    end_reason: str = ""
    label_changes: int = 0
    final_label: str = ""
    final_confidence: float = 0.0
    """The last labelled decision, unsmoothed (at the end of a file sampled as predict
    samples it: predict's answer); empty while still warming up."""
    latencies: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "latencies"}
        for k, v in row.items():
            if isinstance(v, float):
                row[k] = round(v, 3)
        return {"type": "summary", **row}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def run_stream(
    source: FrameSource,
    model: SplitModel,
    config: StreamConfig | None = None,
    *,
    on_decision: Callable[[Decision], None] | None = None,
    output: str | Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    plan: StreamPlan | None = None,
    run_info: RunInfo | None = None,
) -> StreamStats:
    """Recognise continuously until the source ends; returns the stats.

    ``on_decision`` is called for every decision (e.g. to print a JSON line), warm-up ones
    included; a source that ends (``end of stream``, not ``config.max_frames``) adds a final
    decision (:meth:`StreamRecognizer.finish`) unless its last frame gave one. ``output``
    writes every non-dropped frame with the shown label (or the warm-up marker) drawn on it.
    ``plan`` (default: :func:`plan_stream` of the model, config, source and ``run_info``, the
    run's ``run.json``) says which frames are sampled.
    """
    config = config or StreamConfig()
    plan = plan or plan_stream(model, config, source, run_info)
    rec = StreamRecognizer(model, config, plan)
    stats = StreamStats(
        source.name,
        rec.mode,
        rec.jump,
        rec.window,
        plan.reason,
        source_fps=source.fps,
        warmup_steps=rec.warmup,
    )
    writer = AnnotatedWriter(output, source.fps) if output else None
    decision_latencies: list[float] = []
    shown = ""
    text = ""  # drawn on the annotated video

    def take(decision: Decision) -> None:
        nonlocal shown, text
        stats.decisions += 1
        decision_latencies.append(decision.latency_ms)
        text = decision.text()
        if decision.label is None:
            stats.warmup_decisions += 1
        else:
            if decision.label != shown and shown:
                stats.label_changes += 1
            shown = decision.label
            stats.final_label = decision.raw_label or ""
            stats.final_confidence = decision.raw_confidence or 0.0
        if on_decision is not None:
            on_decision(decision)

    stopped = False
    anchor: tuple[float, float] | None = None  # (wall clock, source time) of the time origin
    start = clock()
    frames = ReadAhead(source.frames())
    try:
        for frame in frames:
            if config.max_frames is not None and stats.frames_read >= config.max_frames:
                stopped = True
                break
            stats.frames_read += 1
            if frame.restart:
                anchor = None
            if source.live and anchor is not None:
                due = anchor[0] + (frame.time - anchor[1])
                if source.paced and due > clock():
                    time.sleep(due - clock())
                # Behind real time: skip frames (only those the model would sample cost time).
                if clock() - due > config.late_frames / source.fps and rec.wants(frame.index):
                    stats.frames_dropped += 1
                    continue
            sampled = rec.wants(frame.index)
            t0 = time.perf_counter()
            decision = rec.push(frame)
            if source.live and anchor is None:
                # The clock starts once the first frame is through, so the model's one-off
                # first-call cost (allocations, kernel choice) is not counted as lateness.
                anchor = (clock(), frame.time)
            if sampled:
                stats.latencies.append((time.perf_counter() - t0) * 1000.0)
            if decision is not None:
                take(decision)
            if writer is not None:
                writer.write(frame.image, text)
        # the end of a file: its answer, on all it held (not a stream cut short, or lost)
        if not stopped and source.end_reason == "end of stream":
            decision = rec.finish()
            if decision is not None:
                take(decision)
    finally:
        frames.close()  # releases the decoder / connection when stopped early
        if writer is not None:
            writer.close()
    stats.wall_s = clock() - start
    stats.fps = stats.frames_read / stats.wall_s if stats.wall_s > 0 else math.inf
    stats.frames_encoded = rec.frames_encoded
    stats.reconnects = source.reconnects
    stats.end_reason = source.end_reason
    stats.latency_ms_p50 = _pct(stats.latencies, 50)
    stats.latency_ms_p95 = _pct(stats.latencies, 95)
    stats.decision_latency_ms_p50 = _pct(decision_latencies, 50)
    stats.decision_latency_ms_p95 = _pct(decision_latencies, 95)
    return stats
