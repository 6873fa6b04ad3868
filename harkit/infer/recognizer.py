"""``Recognizer``: a trained run folder -> action labels for video files or frame arrays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from harkit._lazy import validated
from harkit.arguments import Device, PathArg, PositiveFinite, RunFolder, VideoArg, VideoPaths
from harkit.data.clips import FrameLookup, load_clip, out_of_memory_reason, read_sampled
from harkit.data.sampling import sample_indices
from harkit.data.video import VideoReadError, get_reader
from harkit.evaluate.reports import format_prediction
from harkit.flow.sampled import TooFewFramesError
from harkit.infer.errors import InferenceError, WindowError
from harkit.infer.flow import FlowComputer
from harkit.infer.pipeline import SplitModel, split_model
from harkit.infer.training_clip import training_clip_length
from harkit.infer.windows import (
    VideoSegments,
    WindowPrediction,
    frames_for_seconds,
    merge_windows,
    view_starts,
    window_starts,
)
from harkit.train.run import load_run, read_run_info
from harkit.train.run_info import RunInfo

__all__ = ["Clip", "Engine", "Prediction", "Recognizer"]

log = logging.getLogger(__name__)

Engine = Literal["torch", "onnx"]


@dataclass
class Prediction:
    """The recognised action of one video. ``error`` is set (and the rest empty) when the
    video could not be read."""

    source: str
    label: str = ""
    confidence: float = float("nan")
    top_k: list[tuple[str, float]] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    error: str | None = None
    note: str = ""
    """Set when the request was adjusted (e.g. fewer views than asked: the video has no
    more distinct windows)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def format(self) -> str:
        """Seed 004's line: ``"Class: Diving, Confidence: 0.98"``."""
        return format_prediction(self.label, self.confidence)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        out = {
            "source": self.source,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "top_k": [{"label": lab, "prob": round(p, 6)} for lab, p in self.top_k],
        }
        if self.note:
            out["note"] = self.note
        return out


def _valid_steps(frames: np.ndarray, mask: np.ndarray) -> int:
    valid = mask if mask.ndim == 1 else mask.any(axis=1)
    return int(valid.sum()) if valid.size else len(frames)


@dataclass
class Clip:
    """The sampled input of one clip: RGB frames, their valid steps and, for flow-stream
    models, the uint8 flow planes of the sampled pairs (:mod:`harkit.infer.flow`)."""

    frames: np.ndarray
    valid: int
    flow: np.ndarray | None = None

    @property
    def steps(self) -> int:
        """Steps the per-step encoder returns (flow has one pair fewer: the shortest)."""
        return len(self.frames) if self.flow is None else min(len(self.frames), len(self.flow))


class Recognizer:
    """Recognise actions with a trained run: decode -> sample -> encoder -> head -> softmax.

    Features-mode runs compute the recipe's backbone features from the sampled frames with
    each backbone's own preprocessing (what the feature store holds for training);
    end-to-end runs apply the network's clip transform. ``engine='onnx'`` runs the exported
    encoder/head files of :func:`harkit.infer.export.export_run` with onnxruntime.
    """

    def __init__(
        self, model: SplitModel, engine: Engine = "torch", run_info: RunInfo | None = None
    ) -> None:
        self.model = model
        self.engine = engine
        self.run_info = run_info
        """``run.json`` (None: no run folder): the training clip length long videos are
        windowed by."""
        self.flow = FlowComputer(model.flow) if model.flow is not None else None

    @classmethod
    @validated
    def from_run(
        cls,
        path: RunFolder,
        device: Device = "cpu",
        engine: Engine = "torch",
        fast: bool = True,
        onnx_dir: PathArg | None = None,
        *,
        flow: Any = None,
        flow_method: str | None = None,
    ) -> Recognizer:
        """Load a run folder. ``onnx_dir`` (engine='onnx'): exported files, default
        ``RUN/onnx``. Flow-stream runs: ``flow`` (a ``flow_config.json``, its folder or a
        :class:`~harkit.flow.extract.FlowConfig`) and ``flow_method`` override the flow
        settings (:func:`harkit.infer.flow.resolve_flow`)."""
        recipe, classes, net = load_run(path, device=device)
        run_info = read_run_info(path)
        # the exported files replace the encoder: no backbone graphs of its own to export
        model = split_model(
            recipe,
            classes,
            net,
            device=device,
            fast=fast,
            engine="torch" if engine == "onnx" else "auto",
            flow=flow,
            flow_method=flow_method,
            run_info=run_info,
        )
        if engine == "onnx":
            from harkit.infer.export import attach_onnx

            attach_onnx(model, onnx_dir or path / "onnx")
        return cls(model, engine, run_info)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def precision(self) -> str:
        """Precision the encoder runs in (``'fp32'``, ``'bf16'`` or ``'fp16'``)."""
        return self.model.encoder.precision

    # -- stages ---------------------------------------------------------------------------

    def load(self, video: str | Path) -> tuple[np.ndarray, int]:
        """Decoded sampled frames of a file and the number of valid steps (flow-stream
        models: :meth:`load_clip` also gives the flow)."""
        clip = self.load_clip(video)
        return clip.frames, clip.valid

    def load_clip(self, video: str | Path) -> Clip:
        """The sampled input of a file. Unreadable files raise
        :class:`~harkit.data.video.VideoReadError`."""
        if self.flow is None:
            frames, sampled = load_clip(video, self.model.recipe.input.sampling)
            return Clip(frames, _valid_steps(frames, sampled.mask))
        try:
            return read_sampled(video, self.sample_clip)
        except (InferenceError, TooFewFramesError) as exc:
            raise VideoReadError(video, str(exc)) from None

    def sample_clip(self, num_frames: int, read: Callable[[np.ndarray], np.ndarray]) -> Clip:
        """The sampled input of a video of ``num_frames`` frames; ``read(indices)`` returns
        the RGB frames at those (sorted, unique) indices. Each frame is read once, also
        when both the RGB and the flow stream need it."""
        if num_frames < 1:
            raise InferenceError("no frames to recognise")
        sampling = self.model.recipe.input.sampling
        sampled = sample_indices(num_frames, sampling)
        needed = self.needed_frames(num_frames)
        frames_at = FrameLookup(needed, read(needed))
        frames = frames_at(sampled.indices)
        clip = Clip(frames, _valid_steps(frames, sampled.mask))
        if self.flow is not None:
            clip.flow, pairs = self.flow.sample(num_frames, sampling, frames_at)
            clip.valid = min(clip.valid, pairs.length)
        return clip

    def needed_frames(self, num_frames: int) -> np.ndarray:
        """Frame indices :meth:`sample_clip` reads for a video of ``num_frames`` frames."""
        sampling = self.model.recipe.input.sampling
        wanted = [sample_indices(num_frames, sampling).indices.reshape(-1)]
        if self.flow is not None:
            wanted.append(self.flow.needed(num_frames, sampling))
        return np.unique(np.concatenate(wanted))

    def sample_array(self, frames: np.ndarray) -> tuple[np.ndarray, int]:
        """Apply the recipe's sampling to an in-memory ``uint8 (N, H, W, 3)`` video."""
        clip = self.array_clip(frames)
        return clip.frames, clip.valid

    def array_clip(self, frames: np.ndarray) -> Clip:
        """The sampled input of an in-memory ``uint8 (N, H, W, 3)`` video."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InferenceError(
                f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        return self.sample_clip(len(frames), lambda idx: frames[idx])

    def features(self, frames: np.ndarray, flow: np.ndarray | None = None) -> Tensor:
        """Head input ``(T', D)`` of sampled frames (and flow, for flow-stream models)."""
        return self.model.encoder.encode(frames, flow)

    def logits(self, sequences: Sequence[Tensor], lengths: Sequence[int]) -> Tensor:
        """Head logits ``(B, C)`` of sequences truncated to their valid steps."""
        if self.model.head_runner is not None:
            return self.model.head_runner(sequences, lengths)
        size = max(len(s) for s in sequences)
        x = sequences[0].new_zeros((len(sequences), size, sequences[0].shape[-1]))
        for i, s in enumerate(sequences):
            x[i, : len(s)] = s
        lens = torch.tensor([len(s) for s in sequences])
        return self.model.head_logits(x.to(self._head_device()), lens).float().cpu()

    def _head_device(self) -> torch.device:
        param = next(self.model.head.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def _steps(self, features: Tensor, clip: Clip) -> Tensor:
        # Clip encoders pool time (seed 003: 20 frames -> 2 steps): keep all of their steps.
        return features[: clip.valid] if len(features) == clip.steps else features

    def clip_logits(self, clip: Clip) -> Tensor:
        """Head logits ``(C,)`` of one sampled clip."""
        feats = self._steps(self.features(clip.frames, clip.flow), clip)
        return self.logits([feats], [len(feats)])[0]

    def _prediction(self, source: str, logits: Tensor, top_k: int) -> Prediction:
        return self._from_probs(source, torch.softmax(logits.float(), dim=-1).numpy(), top_k)

    def _from_probs(self, source: str, probs: np.ndarray, top_k: int) -> Prediction:
        order = np.argsort(-probs)[: max(1, top_k)]
        best = int(order[0])
        return Prediction(
            source=source,
            label=self.classes[best],
            confidence=float(probs[best]),
            top_k=[(self.classes[int(i)], float(probs[int(i)])) for i in order],
            probs=probs,
        )

    # -- public API -----------------------------------------------------------------------

    @validated
    def predict(self, video: VideoArg, top_k: Annotated[int, Field(ge=1)] = 5) -> Prediction:
        """Label one video file, frame folder, or ``uint8 (N, H, W, 3)`` array of all frames.

        Unreadable files raise :class:`~harkit.data.video.VideoReadError`.
        """
        if isinstance(video, np.ndarray):
            clip = self.array_clip(video)
            source = "<array>"
        else:
            clip = self.load_clip(video)
            source = str(video)
        return self._prediction(source, self.clip_logits(clip), top_k)

    @validated
    def predict_many(
        self,
        videos: VideoPaths,
        batch_size: Annotated[int, Field(ge=1)] = 8,
        top_k: Annotated[int, Field(ge=1)] = 5,
        views: Annotated[int, Field(ge=1)] = 1,
    ) -> Iterator[Prediction]:
        """Predictions in input order; unreadable files give a :class:`Prediction` with
        ``error`` set instead of raising. Decoding of the next batch overlaps the CNN.
        ``views`` > 1: each video's :meth:`predict_views`, one video at a time. One path
        (str or Path) is one video."""
        return self._predict_many(videos, batch_size, top_k, views)

    def _predict_many(
        self, paths: list[str], batch_size: int, top_k: int, views: int
    ) -> Iterator[Prediction]:
        if views > 1:
            for path in paths:
                pred = self._guarded(path, lambda p: self.predict_views(p, views, top_k))
                if pred.error:  # the caller reports it (the CLI prints it once)
                    log.debug("cannot read %s: %s", pred.source, pred.error)
                yield pred
            return
        batches = [paths[i : i + max(1, batch_size)] for i in range(0, len(paths), batch_size)]
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._decode_batch, batches[0])
            for i in range(len(batches)):
                decoded = pending.result()
                if i + 1 < len(batches):
                    pending = pool.submit(self._decode_batch, batches[i + 1])
                yield from self._predict_decoded(decoded, top_k)

    def _decode_batch(self, paths: list[str]) -> list[tuple[str, Any]]:
        return [(path, self._guarded(path, self.load_clip)) for path in paths]

    @staticmethod
    def _guarded(path: str, work: Callable[[str], Any]) -> Any:
        """``work(path)``, or a :class:`Prediction` with the reason it could not be read."""
        try:
            return work(path)
        except VideoReadError as exc:
            return Prediction(source=path, error=exc.reason)
        except (OSError, ValueError, InferenceError) as exc:  # non-images, too few frames
            return Prediction(source=path, error=str(exc))
        except MemoryError as exc:  # one huge video is reported, the rest go on
            return Prediction(source=path, error=out_of_memory_reason(exc))

    def _predict_decoded(self, decoded: list[tuple[str, Any]], top_k: int) -> list[Prediction]:
        good = [(p, item) for p, item in decoded if isinstance(item, Clip)]
        results: dict[str, Prediction] = {
            p: item for p, item in decoded if isinstance(item, Prediction)
        }
        if good:
            clips = [clip for _, clip in good]
            seqs = self._encode_together(clips)
            seqs = [self._steps(s, clip) for s, clip in zip(seqs, clips, strict=True)]
            logits = self.logits(seqs, [len(s) for s in seqs])
            for row, (path, _) in enumerate(good):
                results[path] = self._prediction(path, logits[row], top_k)
        for pred in results.values():
            if pred.error:  # the caller reports it (the CLI prints it once)
                log.debug("cannot read %s: %s", pred.source, pred.error)
        return [results[p] for p, _ in decoded]

    def _encode_together(self, clips: list[Clip]) -> list[Tensor]:
        """One CNN call for all frames of a batch (per-step encoders); clip encoders per clip.
        Flow-stream clips go one by one (each is cut to its own shortest stream)."""
        enc = self.model.encoder
        if not enc.per_step or enc.needs_flow or len(clips) == 1:
            return [enc.encode(c.frames, c.flow) for c in clips]
        sizes = [len(c.frames) for c in clips]
        shapes = {c.frames.shape[1:] for c in clips}
        if len(shapes) > 1:  # different frame sizes cannot share one array before the resize
            return [enc.encode(c.frames) for c in clips]
        feats = enc.encode(np.concatenate([c.frames for c in clips]))
        return list(torch.split(feats, sizes))

    # -- long videos ----------------------------------------------------------------------

    def clip_window(self, fps: float) -> tuple[int, str] | None:
        """Frames of one training clip at ``fps`` and where that comes from; None when the
        run records no clip length and its sampling has no fixed span."""
        clip = training_clip_length(self.run_info)
        if clip is not None:
            return max(1, round(clip.at(fps))), f"the run's training clips ({clip.origin})"
        s = self.model.recipe.input.sampling
        if s.strategy in ("stride", "all") and s.max_frames is not None:
            step = s.stride if s.strategy == "stride" else 1
            return s.max_frames * step, f"the recipe's sampling ({s.describe()})"
        if s.strategy == "segments" and s.max_segments is not None:
            return s.max_segments * s.segment_length, f"the recipe's sampling ({s.describe()})"
        return None

    def _video(
        self, video: str | Path | np.ndarray, fps: float | None
    ) -> tuple[str, int, float, Callable[[int], Iterator[np.ndarray]]]:
        """(source name, frame count, fps, frames(stop) iterator) of a file or array."""
        if isinstance(video, np.ndarray):
            frames = np.asarray(video)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise InferenceError(
                    f"expected uint8 frames (N, H, W, 3), got {frames.dtype} {frames.shape}"
                )
            return "<array>", len(frames), fps or 25.0, lambda stop: iter(frames[:stop])
        reader = get_reader("auto", video)
        info = reader.info(video)
        if info.num_frames < 1:
            raise VideoReadError(video, "no frames could be decoded")
        rate = fps or (info.fps if info.fps > 0 else 25.0)
        return str(video), info.num_frames, rate, lambda stop: reader.iter_frames(video, stop)

    def _span_logits(
        self, frames: Callable[[int], Iterator[np.ndarray]], spans: list[tuple[int, int]]
    ) -> Iterator[Tensor]:
        """Logits of each frame span ``[start, end)`` (in order of start) as ``predict`` gives
        them for a video of those frames; decodes once and keeps only frames still needed."""
        plans = [(a, b, self.needed_frames(b - a) + a) for a, b in spans]
        last_use: dict[int, int] = {}
        for k, (_, _, needed) in enumerate(plans):
            for i in needed.tolist():
                last_use[i] = k
        kept: dict[int, np.ndarray] = {}
        done = 0
        seen = 0
        for i, frame in enumerate(frames(max(last_use) + 1)):
            seen = i + 1
            if i in last_use:
                kept[i] = frame
            while done < len(plans) and i >= plans[done][2][-1]:
                a, b, needed = plans[done]
                clip = self.sample_clip(
                    b - a, lambda idx, a=a: np.stack([kept[a + j] for j in idx.tolist()])
                )
                yield self.clip_logits(clip)
                for j in needed.tolist():
                    if last_use[j] == done:
                        kept.pop(j, None)
                done += 1
            if done == len(plans):
                return
        raise _ShortVideo(seen)

    @validated
    def predict_segments(
        self,
        video: VideoArg,
        window: PositiveFinite | None = None,
        stride: PositiveFinite | None = None,
        top_k: Annotated[int, Field(ge=1)] = 5,
        fps: PositiveFinite | None = None,
    ) -> VideoSegments:
        """Slide a window over the whole video; per-window labels + merged segments.

        ``window`` / ``stride`` in seconds (default: one training clip, see
        :meth:`clip_window`, and half of it). A video shorter than one window is one window
        over all its frames (``note`` says so). ``fps`` for arrays (default 25).
        """
        if window is not None and stride is not None and stride > window:
            raise WindowError(_gap_message(stride, window))
        source, total, rate, frames = self._video(video, fps)
        if window is not None:
            size, origin = frames_for_seconds(window, rate), f"window {window:g} s given"
        else:
            found = self.clip_window(rate)
            if found is None:
                raise InferenceError(
                    "the run records no training clip length (run.json has no train_clips "
                    "and its dataset is not readable here); give the window in seconds "
                    "(--window)"
                )
            size, origin = found
        size = max(size, 2 if self.flow is not None else 1)  # flow needs a pair
        step = frames_for_seconds(stride, rate) if stride is not None else max(1, size // 2)
        if step > size:  # windows would skip frames: segments would label unseen time
            raise WindowError(_gap_message(step / rate, size / rate))
        for _ in range(2):  # a header that over-counts: again with the decoded count
            note = ""
            if total < size:
                note = (
                    f"video shorter than one window ({total} < {size} frames): one window "
                    "over all of it"
                )
            spans = [(a, min(a + size, total)) for a in window_starts(total, size, step)]
            try:
                rows = []
                for (a, b), logits in zip(spans, self._span_logits(frames, spans), strict=False):
                    pred = self._prediction(source, logits, top_k)
                    rows.append(
                        WindowPrediction(
                            a,
                            b,
                            a / rate,
                            b / rate,
                            pred.label,
                            pred.confidence,
                            pred.top_k,
                            pred.probs,
                        )
                    )
            except _ShortVideo as short:
                total = short.frames
                if total < 1:
                    raise VideoReadError(source, "no frames could be decoded") from None
                continue
            return VideoSegments(
                source, rate, total, size, step, origin, rows, merge_windows(rows, rate), note
            )
        raise VideoReadError(source, "frame count changed between two decodes")

    @validated
    def predict_views(
        self,
        video: VideoArg,
        views: Annotated[int, Field(ge=1)],
        top_k: Annotated[int, Field(ge=1)] = 5,
        fps: PositiveFinite | None = None,
    ) -> Prediction:
        """Video-level prediction: the mean softmax of ``views`` windows evenly spaced over
        the video (:func:`~harkit.infer.windows.view_starts`), each labelled as ``predict``
        labels a video of its frames. A window is one training clip (:meth:`clip_window`)
        when that is known and shorter than the video, else half the video (as ``harkit
        evaluate --clips`` takes its views). ``views=1`` is :meth:`predict` exactly."""
        if views == 1:
            return self.predict(video, top_k=top_k)
        source, total, rate, frames = self._video(video, fps)
        for _ in range(2):
            spans = self.view_spans(total, views, rate)
            note = ""
            if len(spans) < views:
                note = (
                    f"{len(spans)} views instead of {views}: the video has only "
                    f"{len(spans)} distinct windows"
                )
            try:
                logits = list(self._span_logits(frames, sorted(spans)))
            except _ShortVideo as short:
                total = short.frames
                if total < 1:
                    raise VideoReadError(source, "no frames could be decoded") from None
                continue
            probs = torch.softmax(torch.stack(logits).float(), dim=-1).mean(dim=0)
            pred = self._from_probs(source, probs.numpy(), top_k)
            pred.note = note
            return pred
        raise VideoReadError(source, "frame count changed between two decodes")

    def view_spans(self, num_frames: int, views: int, fps: float) -> list[tuple[int, int]]:
        """The frame spans ``[start, end)`` :meth:`predict_views` averages: ``views`` of
        them, or fewer when the video has fewer distinct windows (one per start frame)."""
        found = self.clip_window(fps)
        size = found[0] if found is not None and found[0] < num_frames else -(-num_frames // 2)
        size = min(num_frames, max(size, 2 if self.flow is not None else 1))
        views = min(views, num_frames - size + 1)
        return [(a, a + size) for a in view_starts(num_frames, views, size)]


def _gap_message(stride: float, window: float) -> str:
    return (
        f"stride {stride:g} s is longer than the window {window:g} s: windows would leave "
        "gaps no window looks at; expected a stride <= the window"
    )


class _ShortVideo(Exception):
    """The video decoded to fewer frames than its header says."""

    def __init__(self, frames: int) -> None:
        super().__init__(frames)
        self.frames = frames
