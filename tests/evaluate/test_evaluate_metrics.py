"""Metrics against hand-computed values, sklearn cross-checks and clip -> video aggregation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from harkit.errors import HarkitError
from harkit.evaluate import EvaluationError, Metrics, aggregate_clips, compute_metrics

CLASSES = ["Diving", "Fencing", "Rowing"]
# Predictions (argmax) are 0, 1, 1, 1, 2, 0 for true labels 0, 0, 1, 1, 2, 2.
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
        [0.5, 0.1, 0.4],
    ]
)


def test_hand_computed_example():
    m = compute_metrics(Y, P, CLASSES)
    assert m.num_samples == 6
    assert m.top1 == pytest.approx(4 / 6)
    assert m.top_k == 3 and m.top5 == 1.0  # k = min(5, C) = 3 covers every class
    # per class: Diving P=1/2 R=1/2, Fencing P=2/3 R=1, Rowing P=1 R=1/2
    rows = {r.name: r for r in m.per_class}
    assert rows["Diving"].precision == pytest.approx(0.5)
    assert rows["Fencing"].precision == pytest.approx(2 / 3)
    assert rows["Fencing"].f1 == pytest.approx(0.8)
    assert rows["Rowing"].f1 == pytest.approx(2 / 3)
    assert rows["Rowing"].accuracy == pytest.approx(0.5)
    assert [r.support for r in m.per_class] == [2, 2, 2]
    assert m.mean_class_accuracy == pytest.approx(2 / 3)
    assert m.precision_macro == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m.recall_macro == pytest.approx(2 / 3)
    assert m.f1_macro == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.f1_weighted == pytest.approx(m.f1_macro)  # equal supports
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert m.confusion.dtype.kind == "i"


def test_weighted_and_macro_match_sklearn_on_unbalanced_data():
    rng = np.random.default_rng(3)
    y = rng.choice(6, size=200, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    p = rng.random((200, 6))
    p[np.arange(200), y] += rng.random(200)
    pred = p.argmax(1)
    m = compute_metrics(y, p, [f"c{i}" for i in range(6)])
    assert m.f1_weighted == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m.f1_macro == pytest.approx(f1_score(y, pred, average="macro"))
    assert m.precision_weighted == pytest.approx(precision_score(y, pred, average="weighted"))
    assert m.recall_weighted == pytest.approx(m.top1)  # weighted recall is accuracy
    assert m.f1_weighted != pytest.approx(m.f1_macro)
    # top-5 of 6 classes: a hit unless the true class has the lowest score
    expected = np.mean(p[np.arange(200), y] > p.min(axis=1))
    assert m.top5 == pytest.approx(expected)
    assert m.top1 < m.top5 < 1.0


def test_top5_with_fewer_than_five_classes():
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    m = compute_metrics(y, p, ["a", "b"])
    assert m.top_k == 2 and m.top5 == 1.0
    assert m.top1 == pytest.approx(0.5)
    p4 = np.array([[0.1, 0.2, 0.3, 0.4]] * 3)
    m4 = compute_metrics([0, 2, 3], p4, list("abcd"))
    assert m4.top_k == 4 and m4.top5 == 1.0 and m4.top1 == pytest.approx(1 / 3)


def test_top5_counts_rank_five_but_not_six():
    scores = np.array([[0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]] * 2)
    m = compute_metrics([4, 5], scores, [f"c{i}" for i in range(7)])
    assert m.top_k == 5
    assert m.top5 == pytest.approx(0.5)
    assert m.top1 == 0.0


def test_absent_class_in_y_true():
    y = np.array([0, 0, 1, 3, 3, 1])
    p = np.eye(4)[[0, 1, 1, 3, 0, 1]] * 0.7 + 0.075
    m = compute_metrics(y, p, ["a", "b", "c", "d"])
    absent = m.per_class[2]
    assert absent.support == 0 and absent.accuracy == 0.0 and absent.f1 == 0.0
    pred = p.argmax(1)
    # the absent, never predicted class does not pull the macro average down
    assert m.f1_macro == pytest.approx(f1_score(y, pred, average="macro"))
    assert m.recall_macro == pytest.approx(recall_score(y, pred, average="macro"))
    assert m.mean_class_accuracy == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert m.confusion.shape == (4, 4) and m.confusion[2].sum() == 0


def test_predicted_class_absent_from_y_true_counts_as_wrong():
    y = np.array([0, 0, 1])
    p = np.eye(3)[[0, 2, 1]]
    m = compute_metrics(y, p, ["a", "b", "c"])
    assert m.per_class[2].precision == 0.0 and m.per_class[2].support == 0
    assert m.precision_macro == pytest.approx((1 + 1 + 0) / 3)


def test_to_dict_is_json_and_round_trips():
    m = compute_metrics(Y, P, CLASSES)
    data = json.loads(json.dumps(m.to_dict()))
    assert data["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert data["per_class"][1]["name"] == "Fencing"
    back = Metrics.from_dict(data)
    assert back.headline() == m.headline()
    np.testing.assert_array_equal(back.confusion, m.confusion)
    assert back.per_class == m.per_class
    with pytest.raises(EvaluationError):
        Metrics.from_dict({"top1": 0.5})


@pytest.mark.parametrize(
    ("y", "p", "classes", "match"),
    [
        (Y[:5], P, CLASSES, "5 samples but probs has 6 rows"),
        (Y, P, ["a", "b"], "3 columns but there are 2 class names"),
        (Y, P[:, 0], CLASSES, "2-D"),
        (np.array([0, 0, 1, 1, 2, 3]), P, CLASSES, "outside 0..2"),
        (Y.astype(float) + 0.5, P, CLASSES, "integer"),
        (Y[:0], P[:0], CLASSES, "no samples"),
    ],
)
def test_bad_inputs_raise_clear_errors(y, p, classes, match):
    with pytest.raises(HarkitError, match=match):
        compute_metrics(y, p, classes)


def test_nan_scores_rejected():
    p = P.copy()
    p[0, 0] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        compute_metrics(Y, p, CLASSES)


def test_video_aggregation_fixes_a_wrong_clip():
    ids = np.array(["v_b", "v_a", "v_a", "v_b", "v_a"])
    labels = np.array([1, 0, 0, 1, 0])
    probs = np.array(
        [
            [0.2, 0.7, 0.1],
            [0.9, 0.05, 0.05],
            [0.35, 0.6, 0.05],  # wrong clip of v_a
            [0.3, 0.6, 0.1],
            [0.8, 0.1, 0.1],
        ]
    )
    clip = compute_metrics(labels, probs, CLASSES)
    assert clip.top1 == pytest.approx(4 / 5)
    video_labels, video_probs, video_ids = aggregate_clips(ids, probs, labels)
    assert list(video_ids) == ["v_b", "v_a"]  # order of first appearance
    np.testing.assert_array_equal(video_labels, [1, 0])
    np.testing.assert_allclose(
        video_probs[1], [(0.9 + 0.35 + 0.8) / 3, 0.25, (0.05 + 0.05 + 0.1) / 3]
    )
    np.testing.assert_allclose(video_probs.sum(1), 1.0)
    video = compute_metrics(video_labels, video_probs, CLASSES, level="video")
    assert video.top1 == 1.0 and video.num_samples == 2 and video.level == "video"


def test_aggregate_logits_applies_softmax_per_clip():
    logits = np.array([[10.0, 0.0], [0.0, 1.0]])
    _, probs, _ = aggregate_clips([7, 7], logits, [0, 0], logits=True)
    expected = (
        np.array([1, np.exp(-10)]) / (1 + np.exp(-10)) + np.array([1, np.e]) / (1 + np.e)
    ) / 2
    np.testing.assert_allclose(probs[0], expected)


def test_aggregate_rejects_inconsistent_input():
    with pytest.raises(EvaluationError, match="different labels"):
        aggregate_clips(["a", "a"], np.ones((2, 3)) / 3, [0, 1])
    with pytest.raises(EvaluationError, match="number of clips"):
        aggregate_clips(["a", "b"], np.ones((3, 3)) / 3, [0, 1, 1])
