"""Classification metrics over plain arrays: clip level, video level, per class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from harkit.evaluate.errors import EvaluationError

# The metrics a summary, a split average or a comparison reports, in display order.
HEADLINE: tuple[str, ...] = (
    "top1",
    "top5",
    "mean_class_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)

HEADLINE_LABELS: dict[str, str] = {
    "top1": "Top-1 accuracy",
    "top5": "Top-5 accuracy",
    "mean_class_accuracy": "Mean class accuracy",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "precision_weighted": "Precision (weighted)",
    "recall_weighted": "Recall (weighted)",
    "f1_weighted": "F1 (weighted)",
}


@dataclass(frozen=True)
class ClassMetrics:
    """One row of the per-class table. ``accuracy`` is the share of the class's samples
    classified correctly (equal to recall); it is 0 for a class with no samples."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays ambiguously
class Metrics:
    """All metrics of one evaluation. Scores are fractions in [0, 1]."""

    classes: list[str]
    num_samples: int
    top1: float
    top5: float
    top_k: int
    mean_class_accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float
    per_class: list[ClassMetrics]
    confusion: np.ndarray = field(repr=False)
    level: str = "clip"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def headline(self) -> dict[str, float]:
        """The summary scores by name (see ``HEADLINE``)."""
        return {name: float(getattr(self, name)) for name in HEADLINE}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only, so ``json.dumps`` works on the result."""
        return {
            "level": self.level,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "top_k": self.top_k,
            **self.headline(),
            "classes": list(self.classes),
            "per_class": [row.to_dict() for row in self.per_class],
            "confusion_matrix": self.confusion.astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Inverse of ``to_dict`` (e.g. to average the ``metrics.json`` of several splits)."""
        try:
            return cls(
                classes=list(data["classes"]),
                num_samples=int(data["num_samples"]),
                top_k=int(data["top_k"]),
                per_class=[ClassMetrics(**row) for row in data["per_class"]],
                confusion=np.asarray(data["confusion_matrix"], dtype=np.int64),
                level=str(data.get("level", "clip")),
                **{name: float(data[name]) for name in HEADLINE},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EvaluationError(f"not a metrics mapping: {exc}") from exc


def _check_inputs(y_true: Any, probs: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1:
        raise EvaluationError(f"y_true must be 1-D (N,), got shape {y.shape}")
    if p.ndim != 2:
        raise EvaluationError(f"probs must be 2-D (N, C), got shape {p.shape}")
    if p.shape[0] != y.shape[0]:
        raise EvaluationError(f"y_true has {y.shape[0]} samples but probs has {p.shape[0]} rows")
    if y.shape[0] == 0:
        raise EvaluationError("no samples to evaluate")
    if p.shape[1] != num_classes:
        raise EvaluationError(
            f"probs has {p.shape[1]} columns but there are {num_classes} class names"
        )
    if not np.all(np.isfinite(p)):
        raise EvaluationError("probs contains NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise EvaluationError(f"y_true must hold integer class indices, got {y.dtype}")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise EvaluationError(
            f"y_true holds class index {int(y[bad][0])}, outside 0..{num_classes - 1}"
        )
    return y.astype(np.int64), p


def _top_k(y: np.ndarray, p: np.ndarray, k: int) -> float:
    num_classes = p.shape[1]
    if k >= num_classes:
        return 1.0
    if num_classes == 2:  # sklearn wants 1-D scores in the binary case; here k == 1
        return float(np.mean(p.argmax(axis=1) == y))
    return float(top_k_accuracy_score(y, p, k=k, labels=np.arange(num_classes)))


def compute_metrics(
    y_true: Any, probs: Any, classes: Sequence[str], *, level: str = "clip"
) -> Metrics:
    """Metrics of predictions ``probs`` (N, C) (probabilities or logits; only their order
    matters) against integer labels ``y_true`` (N,).

    Top-k uses k = min(5, C). Macro and weighted averages run over the classes that occur
    in ``y_true`` or in the predictions (sklearn's default); a class that is neither present
    nor predicted has no defined score and does not pull the macro average down. Mean class
    accuracy is the mean recall over the classes present in ``y_true`` (balanced accuracy).
    """
    classes = [str(c) for c in classes]
    if not classes:
        raise EvaluationError("no class names given")
    num_classes = len(classes)
    y, p = _check_inputs(y_true, probs, num_classes)
    y_pred = p.argmax(axis=1)
    all_labels = np.arange(num_classes)

    cm = confusion_matrix(y, y_pred, labels=all_labels).astype(np.int64)
    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=all_labels, zero_division=0
    )
    seen = np.union1d(y, y_pred)
    averages = {}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            y, y_pred, labels=seen, average=average, zero_division=0
        )
        averages[average] = (float(ap), float(ar), float(af))

    present = support > 0
    per_class_acc = np.where(present, np.diag(cm) / np.maximum(support, 1), 0.0)
    per_class = [
        ClassMetrics(
            name=classes[i],
            precision=float(prec[i]),
            recall=float(rec[i]),
            f1=float(f1[i]),
            support=int(support[i]),
            accuracy=float(per_class_acc[i]),
        )
        for i in range(num_classes)
    ]
    top_k = min(5, num_classes)
    return Metrics(
        classes=classes,
        num_samples=int(y.shape[0]),
        top1=float(np.mean(y_pred == y)),
        top5=_top_k(y, p, top_k),
        top_k=top_k,
        mean_class_accuracy=float(per_class_acc[present].mean()),
        precision_macro=averages["macro"][0],
        recall_macro=averages["macro"][1],
        f1_macro=averages["macro"][2],
        precision_weighted=averages["weighted"][0],
        recall_weighted=averages["weighted"][1],
        f1_weighted=averages["weighted"][2],
        per_class=per_class,
        confusion=cm,
        level=level,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def aggregate_clips(
    video_ids: Any, probs: Any, labels: Any, *, logits: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the class probabilities of all clips of each video (the standard video-level
    protocol). Pass ``logits=True`` to apply a softmax to each clip first.

    Returns ``(video_labels (V,), video_probs (V, C), video_ids (V,))`` with the videos in
    order of first appearance. All clips of one video must carry the same label.
    """
    ids = np.asarray(video_ids)
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if ids.ndim != 1 or y.ndim != 1 or p.ndim != 2:
        raise EvaluationError(
            "expected video_ids (N,), probs (N, C), labels (N,); got shapes "
            f"{ids.shape}, {p.shape}, {y.shape}"
        )
    if not (ids.shape[0] == p.shape[0] == y.shape[0]):
        raise EvaluationError(
            f"video_ids, probs and labels disagree on the number of clips: "
            f"{ids.shape[0]}, {p.shape[0]}, {y.shape[0]}"
        )
    if ids.shape[0] == 0:
        raise EvaluationError("no clips to aggregate")
    if not np.all(np.isfinite(p)):
        raise EvaluationError("probs contains NaN or infinite values")
    if logits:
        p = _softmax(p)

    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")  # videos in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    video_of_clip = rank[inverse]

    num_videos = unique.size
    sums = np.zeros((num_videos, p.shape[1]), dtype=np.float64)
    np.add.at(sums, video_of_clip, p)
    counts = np.bincount(video_of_clip, minlength=num_videos)
    video_probs = sums / counts[:, None]

    video_labels = y[first[order]]
    mismatch = y != video_labels[video_of_clip]
    if mismatch.any():
        bad = ids[np.flatnonzero(mismatch)[0]]
        raise EvaluationError(f"clips of video {bad!r} carry different labels")
    return video_labels, video_probs, unique[order]
