"""``Recognizer``: a trained run folder -> action labels for video files or frame arrays."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from harkit.data.clips import load_clip, out_of_memory_reason
from harkit.data.sampling import sample_indices
from harkit.data.video import VideoReadError
from harkit.evaluate.reports import format_prediction
from harkit.infer.errors import InferenceError
from harkit.infer.pipeline import SplitModel, split_model
from harkit.train.run import load_run

__all__ = ["Engine", "Prediction", "Recognizer"]

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

    @property
    def ok(self) -> bool:
        return self.error is None

    def format(self) -> str:
        """Seed 004's line: ``"Class: Diving, Confidence: 0.98"``."""
        return format_prediction(self.label, self.confidence)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        return {
            "source": self.source,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "top_k": [{"label": lab, "prob": round(p, 6)} for lab, p in self.top_k],
        }


def _valid_steps(frames: np.ndarray, mask: np.ndarray) -> int:
    valid = mask if mask.ndim == 1 else mask.any(axis=1)
    return int(valid.sum()) if valid.size else len(frames)


class Recognizer:
    """Recognise actions with a trained run: decode -> sample -> encoder -> head -> softmax.

    Features-mode runs compute the recipe's backbone features from the sampled frames with
    each backbone's own preprocessing (what the feature store holds for training);
    end-to-end runs apply the network's clip transform. ``engine='onnx'`` runs the exported
    encoder/head files of :func:`harkit.infer.export.export_run` with onnxruntime.
    """

    def __init__(self, model: SplitModel, engine: Engine = "torch") -> None:
        self.model = model
        self.engine = engine

    @classmethod
    def from_run(
        cls,
        path: str | Path,
        device: str = "cpu",
        engine: Engine = "torch",
        fast: bool = True,
        onnx_dir: str | Path | None = None,
    ) -> Recognizer:
        """Load a run folder. ``onnx_dir`` (engine='onnx'): exported files, default
        ``RUN/onnx``."""
        if engine not in ("torch", "onnx"):
            raise InferenceError(f"unknown engine '{engine}'; expected 'torch' or 'onnx'")
        recipe, classes, net = load_run(path, device=device)
        # the exported files replace the encoder: no backbone graphs of its own to export
        model = split_model(recipe, classes, net, device=device, fast=fast,
                            engine="torch" if engine == "onnx" else "auto")  # fmt: skip
        if engine == "onnx":
            from harkit.infer.export import attach_onnx

            attach_onnx(model, Path(onnx_dir) if onnx_dir else Path(path) / "onnx")
        return cls(model, engine)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def precision(self) -> str:
        """Precision the encoder runs in (``'fp32'``, ``'bf16'`` or ``'fp16'``)."""
        return self.model.encoder.precision

    # -- stages ---------------------------------------------------------------------------

    def load(self, video: str | Path) -> tuple[np.ndarray, int]:
        """Decoded sampled frames of a file and the number of valid steps."""
        frames, sampled = load_clip(video, self.model.recipe.input.sampling)
        return frames, _valid_steps(frames, sampled.mask)

    def sample_array(self, frames: np.ndarray) -> tuple[np.ndarray, int]:
        """Apply the recipe's sampling to an in-memory ``uint8 (N, H, W, 3)`` video."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InferenceError(
                f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        sampled = sample_indices(len(frames), self.model.recipe.input.sampling)
        picked = frames[sampled.indices.reshape(-1)]
        picked = picked.reshape(*sampled.indices.shape, *frames.shape[1:])
        return picked, _valid_steps(picked, sampled.mask)

    def features(self, frames: np.ndarray) -> Tensor:
        """Head input ``(T', D)`` of sampled frames."""
        return self.model.encoder.encode(frames)

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

    def _steps(self, features: Tensor, valid: int, total: int) -> Tensor:
        # Clip encoders pool time (seed 003: 20 frames -> 2 steps): keep all of their steps.
        return features[:valid] if len(features) == total else features

    def _prediction(self, source: str, logits: Tensor, top_k: int) -> Prediction:
        probs = torch.softmax(logits.float(), dim=-1).numpy()
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

    def predict(self, video: str | Path | np.ndarray, top_k: int = 5) -> Prediction:
        """Label one video file, frame folder, or ``uint8 (N, H, W, 3)`` array of all frames.

        Unreadable files raise :class:`~harkit.data.video.VideoReadError`.
        """
        if isinstance(video, np.ndarray):
            frames, valid = self.sample_array(video)
            source = "<array>"
        else:
            frames, valid = self.load(video)
            source = str(video)
        feats = self._steps(self.features(frames), valid, len(frames))
        return self._prediction(source, self.logits([feats], [len(feats)])[0], top_k)

    def predict_many(
        self, videos: Iterable[str | Path], batch_size: int = 8, top_k: int = 5
    ) -> Iterator[Prediction]:
        """Predictions in input order; unreadable files give a :class:`Prediction` with
        ``error`` set instead of raising. Decoding of the next batch overlaps the CNN."""
        paths = [str(v) for v in videos]
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
        out: list[tuple[str, Any]] = []
        for path in paths:
            try:
                out.append((path, self.load(path)))
            except VideoReadError as exc:
                out.append((path, exc.reason))
            except (OSError, ValueError) as exc:  # e.g. a folder of non-images, no frames
                out.append((path, str(exc)))
            except MemoryError as exc:  # one huge video is reported, the rest go on
                out.append((path, out_of_memory_reason(exc)))
        return out

    def _predict_decoded(self, decoded: list[tuple[str, Any]], top_k: int) -> list[Prediction]:
        good = [(p, item) for p, item in decoded if not isinstance(item, str)]
        results: dict[str, Prediction] = {
            p: Prediction(source=p, error=item) for p, item in decoded if isinstance(item, str)
        }
        if good:
            seqs = self._encode_together([frames for _, (frames, _) in good])
            seqs = [
                self._steps(s, valid, len(frames))
                for s, (_, (frames, valid)) in zip(seqs, good, strict=True)
            ]
            logits = self.logits(seqs, [len(s) for s in seqs])
            for row, (path, _) in enumerate(good):
                results[path] = self._prediction(path, logits[row], top_k)
        for pred in results.values():
            if pred.error:
                log.warning("cannot read %s: %s", pred.source, pred.error)
        return [results[p] for p, _ in decoded]

    def _encode_together(self, clips: list[np.ndarray]) -> list[Tensor]:
        """One CNN call for all frames of a batch (per-step encoders); clip encoders per clip."""
        enc = self.model.encoder
        if not enc.per_step or len(clips) == 1:
            return [enc.encode(c) for c in clips]
        sizes = [len(c) for c in clips]
        shapes = {c.shape[1:] for c in clips}
        if len(shapes) > 1:  # different frame sizes cannot share one array before the resize
            return [enc.encode(c) for c in clips]
        feats = enc.encode(np.concatenate(clips))
        return list(torch.split(feats, sizes))
