"""Continuous recognition on a video stream: a file, a webcam or a network URL.

Two decoders, chosen per model (``mode='auto'``):

* **incremental** (streamable models: a per-frame/per-segment encoder and a unidirectional
  head): every sampled frame goes once through the CNN and once through ``head.step`` with the
  kept recurrent state, O(1) work per frame, and every step yields a decision.
* **windowed** (bidirectional heads such as corehar's BiLSTM, seed 003's 3D CNN): the features
  of the last ``window`` sampled frames are kept (each frame still goes through the CNN only
  once) and the head re-runs over that window every ``hop`` sampled frames. Clip encoders (3D
  CNN over the whole clip) keep the last ``window`` raw frames instead.

Only every ``frame_jump``-th frame is sampled, and the defaults come from how the run was
trained (:func:`plan_stream`), so a window looks like a training clip: stride sampling keeps
its stride; ``uniform``/``tsn`` sampling of N frames over a whole clip uses the window N and
the frame jump round(F / N), F being the typical training clip length in frames (``run.json``'s
``train_clips``, else the median of a few training videos when the recorded dataset is
readable). A file of known length up to two such clips long (any length when F is unknown) is
sampled exactly as ``predict`` samples it, so its final decision is predict's answer; a live
source without F falls back to consecutive frames and says so. ``--window``/``--frame-jump``
override. The summary's ``sampling`` says what was used and why.

**State reset policy** (incremental decoding). A recurrent state fed frame by frame over an
endless stream drifts away from training, where clips have ``window`` steps. The default
policy ``staggered`` keeps two states, each reset every ``window`` steps and offset by half a
window; the decision comes from the one that has seen more steps, so after warm-up the head
always looks at between ``window/2`` and ``window`` recent steps, like a training clip, at the
cost of two head steps per frame (still O(1)). ``periodic`` resets one state every ``window``
steps (the context then collapses to one step after each reset); ``none`` never resets
(equal to the full forward over everything seen, used to check the decoder).

Decisions are smoothed: an exponential moving average over the class probabilities
(``smoothing`` = weight kept from the past, 0 = off) and hysteresis (the shown label switches
only when a new label beats it by ``switch_margin`` on ``switch_patience`` consecutive
decisions), so the label does not flicker.

Real time: with ``realtime=True`` a file is played at its native frame rate; live sources
(cameras, URLs) always are real time. A frame that is already more than ``late_frames`` frame
intervals behind the source clock when it is read is dropped unprocessed (counted in
``frames_dropped``), so a slow model skips frames instead of lagging further and further.
Network sources reconnect with exponential back-off (bounded attempts, see
:class:`URLSource`).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from harkit.data.clips import out_of_memory_reason
from harkit.data.sampling import sample_indices
from harkit.data.video import PyAVReader, VideoReadError, check_frame_size, probe
from harkit.infer.errors import InferenceError, SourceError
from harkit.infer.pipeline import SplitModel

__all__ = [
    "AnnotatedWriter",
    "CameraSource",
    "Decision",
    "FileSource",
    "Frame",
    "FrameSource",
    "IncrementalDecoder",
    "LabelSmoother",
    "StreamConfig",
    "StreamPlan",
    "StreamRecognizer",
    "StreamStats",
    "URLSource",
    "open_source",
    "plan_stream",
    "run_stream",
]

log = logging.getLogger(__name__)

ResetPolicy = Literal["staggered", "periodic", "none"]


# ----------------------------------------------------------------------------------------------
# Sources


@dataclass
class Frame:
    """One decoded frame: RGB ``uint8 (H, W, 3)``, its index and time (s) in the source.

    ``restart`` marks the first frame after a reconnect (the source clock starts again).
    """

    index: int
    time: float
    image: np.ndarray
    restart: bool = False


class FrameSource(ABC):
    """Frames of a stream in order. ``live``: frames arrive in real time (drop when late);
    ``paced``: the reader must wait for each frame's time itself (a file in real time)."""

    name: str = ""
    fps: float = 25.0
    num_frames: int | None = None
    """Frames in the whole source when known before decoding (files), else None."""
    live: bool = False
    paced: bool = False
    reconnects: int = 0
    end_reason: str = "end of stream"

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the stream ends (or is lost for good)."""


def _rate(stream: Any, default: float = 25.0) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if 0 < value < 1000 else default


class FileSource(FrameSource):
    """A video file decoded with PyAV, as fast as possible or at its native rate."""

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._reader = PyAVReader()
        try:
            # The reader's checks: no FIFO/device is opened, oversized frames are refused.
            container, stream = self._reader.open(self.path)
        except VideoReadError as exc:
            raise SourceError(str(exc)) from None
        with container:
            self.fps = _rate(stream)
        self.paced = self.live = realtime
        try:  # the count predict samples from (same reader choice), so both pick one set
            self.num_frames = probe(self.path).num_frames or None
        except (VideoReadError, OSError):  # e.g. no count and past the frame limit
            self.num_frames = None

    def frames(self) -> Iterator[Frame]:
        try:
            for i, frame in self._reader.decode(self.path, bounded=False):
                t = float(frame.time) if frame.time is not None else i / self.fps
                yield Frame(i, t, frame.to_ndarray(format="rgb24"))
        except VideoReadError as exc:  # corrupt data midway, or past a size / length limit
            log.warning("%s: decoding stopped early (%s)", self.name, exc.reason)
            self.end_reason = f"decoding error: {exc.reason}"
        except MemoryError as exc:
            self.end_reason = f"decoding error: {out_of_memory_reason(exc)}"
            log.warning("%s: decoding stopped early (%s)", self.name, self.end_reason)


class CameraSource(FrameSource):
    """A webcam through ``cv2.VideoCapture(index)``."""

    live = True

    def __init__(self, index: int, max_failures: int = 30) -> None:
        import cv2

        self.name = f"camera {index}"
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceError(f"no camera at index {index} (cv2.VideoCapture cannot open it)")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.max_failures = max_failures

    def frames(self) -> Iterator[Frame]:
        import cv2

        start = time.monotonic()
        failures, index = 0, 0
        try:
            while failures < self.max_failures:  # bounded: a camera unplugged mid-stream ends
                ok, bgr = self.capture.read()
                if not ok:
                    failures += 1
                    time.sleep(0.01)
                    continue
                failures = 0
                yield Frame(index, time.monotonic() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
            self.end_reason = "camera stopped delivering frames"
        finally:
            self.capture.release()


class URLSource(FrameSource):
    """A network stream (rtsp/http/...) through PyAV, reconnecting with exponential back-off.

    ``timeout``: seconds to open and to wait for data (``av.open(url, timeout=...)``).
    A failed open or a stream that stops early is retried after ``backoff * 2**k`` seconds
    (capped at ``max_backoff``), at most ``retries`` times in a row and ``max_reconnects``
    times in all; after that the stream ends (or, if no frame ever arrived, raises
    :class:`SourceError`). The end of data counts as a drop unless the container announced a
    duration and it was reached. After a reconnect to a source with a known duration
    (a file served over HTTP), frames already seen are skipped, so playback resumes.
    """

    live = True

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_reconnects: int = 10,
    ) -> None:
        self.url = self.name = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_reconnects = max_reconnects
        self.drops = 0

    def _open(self):
        import av

        options = {"rtsp_transport": "tcp"} if self.url.startswith("rtsp") else {}
        return av.open(self.url, options=options, timeout=(self.timeout, self.timeout))

    def _why(self, exc: BaseException) -> str:
        # FFmpeg reports its own timeout (the interrupt callback) as "Immediate exit requested".
        if "Immediate exit requested" in str(exc):
            return f"no answer within {self.timeout:g} s"
        return str(getattr(exc, "strerror", None) or exc)

    def _wait(self, attempt: int, reason: str) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        log.warning("%s: %s; reconnecting in %.2f s (attempt %d of %d)",
                    self.url, reason, delay, attempt, self.retries)
        time.sleep(delay)

    def frames(self) -> Iterator[Frame]:
        import av

        index, attempt = 0, 0
        last_time: float | None = None
        offset = 0.0
        restart = False
        while True:
            try:
                container = self._open()
            except (av.error.FFmpegError, OSError) as exc:
                attempt += 1
                why = self._why(exc)
                if attempt > self.retries:
                    if index == 0:
                        raise SourceError(
                            f"cannot open stream {self.url}: {why} "
                            f"(gave up after {self.retries} retries)"
                        ) from None
                    self.end_reason = f"lost the stream, {self.retries} reconnects failed"
                    log.error("%s: %s", self.url, self.end_reason)
                    return
                self._wait(attempt, f"cannot connect ({why})")
                continue
            clean, reason, got = False, "the stream ended early", 0
            try:
                if not container.streams.video:
                    raise SourceError(f"{self.url}: the stream has no video")
                stream = container.streams.video[0]
                try:  # the frame-size limit of files holds for streams too
                    ctx = stream.codec_context
                    check_frame_size(self.url, ctx.width, ctx.height)
                except VideoReadError as exc:
                    raise SourceError(str(exc)) from None
                self.fps = _rate(stream, self.fps)
                duration = container.duration / 1e6 if container.duration else None
                first: float | None = None
                for frame in container.decode(stream):
                    t = float(frame.time) if frame.time is not None else got / self.fps
                    got += 1
                    if duration is not None and last_time is not None and t <= last_time:
                        continue  # a file replayed from its start after a reconnect: resume
                    if duration is None and restart and first is None:
                        first = t  # live: keep the clock running across reconnects
                        offset = (last_time or 0.0) + 1.0 / self.fps - t
                    t = t + (offset if duration is None else 0.0)
                    attempt = 0
                    yield Frame(index, t, frame.to_ndarray(format="rgb24"), restart)
                    restart = False
                    index += 1
                    last_time = t
                clean = duration is not None and last_time is not None and (
                    last_time >= duration - 1.5 / self.fps
                )
            except (av.error.FFmpegError, OSError, EOFError) as exc:
                reason = f"connection lost ({self._why(exc)})"
            finally:
                container.close()
            if clean:
                self.end_reason = "end of stream"
                return
            self.drops += 1
            if self.reconnects >= self.max_reconnects:
                self.end_reason = f"stream dropped; reconnect limit ({self.max_reconnects}) hit"
                log.error("%s: %s", self.url, self.end_reason)
                return
            attempt += 1
            if attempt > self.retries:
                self.end_reason = f"stream dropped; {self.retries} reconnects gave no frames"
                log.error("%s: %s", self.url, self.end_reason)
                return
            self._wait(attempt, f"{reason} after {got} frames")
            self.reconnects += 1
            restart = True


def open_source(
    source: str | int, realtime: bool = False, timeout: float = 5.0, retries: int = 3,
    backoff: float = 0.5,
) -> FrameSource:
    """A webcam index (``0``), a URL (``rtsp://``, ``http://``, ...) or a video file."""
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return CameraSource(int(text))
    if "://" in text:
        return URLSource(text, timeout=timeout, retries=retries, backoff=backoff)
    return FileSource(text, realtime=realtime)


# ----------------------------------------------------------------------------------------------
# Decoding


class IncrementalDecoder:
    """Feeds one step at a time through ``head.step`` under a state reset policy (see the
    module docstring). ``push(x_t)`` takes ``(1, D)`` and returns the logits ``(C,)``."""

    def __init__(self, head: torch.nn.Module, window: int, policy: ResetPolicy = "staggered"):
        if policy not in ("staggered", "periodic", "none"):
            raise InferenceError(f"unknown reset policy '{policy}'")
        self.head = head
        self.window = max(1, int(window))
        self.policy = policy
        self.states: list[dict | None] = [head.init_state(1), None]
        self.counts = [0, 0]
        self.steps = 0

    def push(self, x_t: Tensor) -> Tensor:
        with torch.no_grad():
            if self.policy == "staggered" and self.steps == self.window // 2 and self.window > 1:
                self.states[1] = self.head.init_state(1)  # the second, offset state starts
            outputs: list[Tensor | None] = [None, None]
            for i, state in enumerate(self.states):
                if state is None:
                    continue
                outputs[i], self.states[i] = self.head.step(x_t, state)
                self.counts[i] += 1
            self.steps += 1
            best = 0 if outputs[1] is None or self.counts[0] >= self.counts[1] else 1
            logits = outputs[best]
            assert logits is not None
            if self.policy != "none":
                for i, state in enumerate(self.states):
                    if state is not None and self.counts[i] >= self.window:
                        self.states[i], self.counts[i] = self.head.init_state(1), 0
            return logits[0]


class LabelSmoother:
    """EMA over probabilities + hysteresis on the shown label."""

    def __init__(self, smoothing: float = 0.5, margin: float = 0.1, patience: int = 3) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise InferenceError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.margin = margin
        self.patience = max(1, patience)
        self.probs: np.ndarray | None = None
        self.current: int | None = None
        self._pending: int | None = None
        self._count = 0

    def update(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """Fold in new probabilities; return (shown class, smoothed probabilities)."""
        if self.probs is None:
            self.probs = probs.copy()
        else:
            self.probs = self.smoothing * self.probs + (1.0 - self.smoothing) * probs
        best = int(self.probs.argmax())
        if self.current is None:
            self.current = best
        elif best != self.current and self.probs[best] >= self.probs[self.current] + self.margin:
            self._count = self._count + 1 if best == self._pending else 1
            self._pending = best
            if self._count >= self.patience:
                self.current, self._pending, self._count = best, None, 0
        else:
            self._pending, self._count = None, 0
        return self.current, self.probs


@dataclass
class Decision:
    """One recognition result on the stream (a JSON line)."""

    timestamp: float
    frame: int
    label: str
    confidence: float
    latency_ms: float
    raw_label: str
    raw_confidence: float
    final: bool = False
    """The decision on a file's complete predict sampling (see :func:`plan_stream`)."""
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Unsmoothed class probabilities of this decision (not in the JSON line)."""

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "probs"}
        for key in ("timestamp", "confidence", "raw_confidence"):
            row[key] = round(row[key], 4)
        row["latency_ms"] = round(row["latency_ms"], 2)
        return {"type": "decision", **row}


@dataclass
class StreamConfig:
    """How a stream is decoded and decided on (``None``: derived from the recipe)."""

    mode: Literal["auto", "incremental", "windowed"] = "auto"
    window: int | None = None
    """Steps per window / reset period; default: the recipe's clip length (see
    :func:`plan_stream`)."""
    hop: int = 4
    """Windowed mode: re-run the head every ``hop`` sampled steps."""
    frame_jump: int | None = None
    """Sample every n-th frame; default: derived from the run's training (:func:`plan_stream`)."""
    reset: ResetPolicy = "staggered"
    smoothing: float = 0.5
    switch_margin: float = 0.1
    switch_patience: int = 3
    late_frames: float = 2.0
    """Real time: drop a frame read more than this many frame intervals after its time."""
    max_frames: int | None = None


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


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def training_clip_length(run_info: dict[str, Any] | None) -> ClipLength | None:
    """The typical training clip of a run, from its ``run.json``.

    ``train_clips: {"frames": F, "fps": R}`` when recorded; else the median length of up to
    :data:`PROBE_VIDEOS` training videos of the recorded ``dataset_config``, when that data
    is still reachable here (headers only). None when neither works.
    """
    info = run_info or {}
    clips = info.get("train_clips")
    if isinstance(clips, dict) and (frames := _number(clips.get("frames"))):
        return ClipLength(frames, _number(clips.get("fps")), "recorded in run.json")
    config = info.get("dataset_config")
    if not isinstance(config, dict):
        return None
    try:  # runs from before train_clips was recorded: probe the data if it is still here
        from harkit.data.datasets import DatasetConfig, build_index
        from harkit.data.inspect import typical_clip

        index = build_index(DatasetConfig.model_validate(config)).subset("train")
        clips = typical_clip(index, PROBE_VIDEOS)
    except Exception as exc:  # best effort: data moved, unreadable, or another machine
        log.debug("no training clip length from the dataset: %s", exc)
        return None
    if clips is None:
        return None
    return ClipLength(clips["frames"], clips["fps"],
                      f"median of {clips['videos']} training videos")


def _nth(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def plan_stream(
    model: SplitModel,
    config: StreamConfig | None = None,
    source: FrameSource | None = None,
    run_info: dict[str, Any] | None = None,
) -> StreamPlan:
    """The frame jump and window a stream uses, derived from how the run was trained.

    * stride sampling: its stride, window ``max_frames`` (16 without one);
    * ``uniform``/``tsn`` N frames over a whole clip: window N and a frame jump that spreads
      them over a typical training clip of F frames, round(F / N)
      (:func:`training_clip_length`, rescaled to the source's frame rate). A file of known
      length up to two typical clips long (any length when F is unknown) is one clip: its
      frames are the ones predict samples (``targets``), so the stream's final decision is
      predict's. A live source without F samples consecutive frames and the reason says so;
    * ``all``/``segments``: consecutive frames.

    ``config.window`` / ``config.frame_jump`` override (an explicit value turns the exact
    file sampling off, since it asks for evenly spaced frames).
    """
    config = config or StreamConfig()
    s = model.recipe.input.sampling
    window = config.window or _recipe_window(model)
    jump_given, window_given = config.frame_jump, config.window
    targets: tuple[int, ...] | None = None
    if s.strategy in ("uniform", "tsn"):
        n = s.num_frames
        clip = training_clip_length(run_info)
        typical = clip.at(source.fps if source is not None else None) if clip else None
        total = source.num_frames if source is not None else None
        if total and (typical is None or total <= 2 * typical):
            jump = max(1, round(total / n))
            why = (f"from the file: {s.strategy} {n} frames over its {total} frames, as "
                   "predict samples it (" + (
                       "the run records no training clip length)" if typical is None
                       else f"one clip: training clips are ~{typical:.0f} frames)"))
            if jump_given is None and window_given is None:
                sampled = sample_indices(total, s)
                targets = tuple(int(i) for i in sampled.indices)
            elif jump_given is None:  # --window asks for evenly spaced frames
                why = f"from the file: every {_nth(jump)} frame spreads {n} over its {total}"
        elif typical is not None:
            jump = max(1, round(typical / n))
            origin = clip.origin if clip is not None else ""
            why = (f"from the run: {s.strategy} {n} frames over ~{typical:.0f}-frame clips "
                   f"({origin})")
        else:
            jump = 1
            why = (f"consecutive frames: the run ({s.strategy} {n} frames per clip) records no "
                   "training clip length and its dataset is not readable here; pass "
                   f"--frame-jump (about clip frames / {n}) to match training")
    elif s.strategy == "stride":
        jump = s.stride
        why = f"from the run: every {_nth(s.stride)} frame (stride sampling)"
    elif s.strategy == "segments":
        jump = 1
        why = f"from the run: consecutive {s.segment_length}-frame segments"
    else:
        jump = 1
        why = "from the run: every frame"
    if jump_given is not None:
        jump = jump_given
        why = f"--frame-jump {jump_given} given; the run's default: {why}"
    if window_given is not None:
        why = f"--window {window_given} given; " + why
    return StreamPlan(frame_jump=jump, window=window, reason=why, targets=targets)


class StreamRecognizer:
    """The decoding core without I/O: ``push(frame)`` -> a :class:`Decision` or None."""

    def __init__(
        self, model: SplitModel, config: StreamConfig | None = None,
        plan: StreamPlan | None = None,
    ) -> None:
        self.model = model
        self.config = config = config or StreamConfig()
        self.plan = plan = plan or plan_stream(model, config)
        self.jump = plan.frame_jump
        self.window = plan.window
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
        self.mode = mode
        self.segment = model.segment_length or 1
        self.hop = max(1, config.hop)
        self.decoder = (
            IncrementalDecoder(model.head, self.window, config.reset)
            if mode == "incremental" else None
        )  # fmt: skip
        self.buffer: deque = deque(maxlen=self.window)
        self.smoother = LabelSmoother(config.smoothing, config.switch_margin,
                                      config.switch_patience)
        self._segment: list[np.ndarray] = []
        self._since_sample = self.jump  # the first frame is sampled
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
        self._seen = frame.index + 1
        if not wanted:
            self._since_sample += 1
            return None
        self._since_sample = 1
        final = frame.index == self._last_target
        repeats = 1
        if self._last_target is not None and not self.model.encoder.per_step:
            repeats = self._targets[frame.index]
        logits = None
        for r in range(repeats):
            self._segment.append(frame.image)
            if len(self._segment) < self.segment:
                return None
            images = np.stack(self._segment)
            self._segment = []
            if self.segment > 1:
                images = images[None]  # (1, L, H, W, 3): one segment step
            logits = self._step(images, final=final and r == repeats - 1)
        if logits is None:
            return None
        probs = torch.softmax(logits.float(), dim=-1).numpy()
        shown, smoothed = self.smoother.update(probs)
        raw = int(probs.argmax())
        if final:  # the whole-clip answer (predict's): no smoothing lag, no hysteresis
            shown, smoothed = raw, probs
        classes = self.model.classes
        return Decision(
            timestamp=frame.time, frame=frame.index, label=classes[shown],
            confidence=float(smoothed[shown]),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            raw_label=classes[raw], raw_confidence=float(probs[raw]), final=final,
            probs=probs,
        )  # fmt: skip

    def _step(self, images: np.ndarray, final: bool = False) -> Tensor | None:
        """One sampled step; ``final``: the last one of an exact plan, always decided."""
        encoder = self.model.encoder
        self.steps += 1
        if not encoder.per_step:  # whole-clip CNN: keep raw frames, encode each window
            self.buffer.append(images[0])
            due = not (self.steps - 1) % self.hop and len(self.buffer) >= min(8, self.window)
            if not (due or final):
                return None
            self.frames_encoded += len(self.buffer)
            feats = encoder.encode(np.stack(self.buffer))
            return self.model.head_logits(feats[None])[0]
        feats = encoder.encode(images)  # (1, D): this step's frame / segment, once
        self.frames_encoded += 1
        if self.decoder is not None:
            return self.decoder.push(feats)
        self.buffer.append(feats[0])
        if (self.steps - 1) % self.hop and not final:
            return None
        return self.model.head_logits(torch.stack(tuple(self.buffer))[None])[0]


# ----------------------------------------------------------------------------------------------
# Output video


class AnnotatedWriter:
    """Writes frames with the current label drawn on them (H.264 through PyAV, streaming)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def _open(self, height: int, width: int) -> None:
        import av

        from harkit.data.synthetic import resolve_encoder

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(resolve_encoder("h264"), rate=rate)
        self._size = (height - height % 2, width - width % 2)  # yuv420p needs even sizes
        stream.height, stream.width = self._size
        stream.pix_fmt = "yuv420p"
        self._stream = stream

    def write(self, image: np.ndarray, text: str) -> None:
        import av
        import cv2

        if self._container is None:
            self._open(*image.shape[:2])
        assert self._size is not None and self._stream is not None and self._container
        h, w = self._size
        canvas = np.ascontiguousarray(image[:h, :w])
        if text:
            scale = max(0.4, h / 480)
            thick = max(1, round(scale * 2))
            origin = (8, int(24 * scale) + 4)
            cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        thick + 2, cv2.LINE_AA)
            cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                        thick, cv2.LINE_AA)
        frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None and self._stream is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None


# ----------------------------------------------------------------------------------------------
# The loop


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
    """The last decision, unsmoothed (on a file sampled exactly: predict's answer)."""
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
    run_info: dict[str, Any] | None = None,
) -> StreamStats:
    """Recognise continuously until the source ends; returns the stats.

    ``on_decision`` is called for every decision (e.g. to print a JSON line); ``output``
    writes every non-dropped frame with the shown label drawn on it. ``plan`` (default:
    :func:`plan_stream` of the model, config, source and ``run_info``, the run's ``run.json``)
    says which frames are sampled.
    """
    config = config or StreamConfig()
    plan = plan or plan_stream(model, config, source, run_info)
    rec = StreamRecognizer(model, config, plan)
    stats = StreamStats(source.name, rec.mode, rec.jump, rec.window, plan.reason,
                        source_fps=source.fps)
    writer = AnnotatedWriter(output, source.fps) if output else None
    decision_latencies: list[float] = []
    shown, shown_conf = "", 0.0
    anchor: tuple[float, float] | None = None  # (wall clock, source time) of the time origin
    start = clock()
    frames = source.frames()
    try:
        for frame in frames:
            if config.max_frames is not None and stats.frames_read >= config.max_frames:
                break
            stats.frames_read += 1
            if frame.restart:
                anchor = None
            if source.live and anchor is not None:
                due = anchor[0] + (frame.time - anchor[1])
                if source.paced and due > clock():
                    time.sleep(due - clock())
                # Behind real time: skip frames (only those the model would sample cost time).
                if (clock() - due > config.late_frames / source.fps
                        and rec.wants(frame.index)):
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
                stats.decisions += 1
                decision_latencies.append(decision.latency_ms)
                if decision.label != shown and shown:
                    stats.label_changes += 1
                shown, shown_conf = decision.label, decision.confidence
                stats.final_label = decision.raw_label
                stats.final_confidence = decision.raw_confidence
                if on_decision is not None:
                    on_decision(decision)
            if writer is not None:
                text = f"{shown} {shown_conf:.2f}" if shown else ""
                writer.write(frame.image, text)
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
