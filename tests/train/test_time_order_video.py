"""Temporal modelling is real: on the synthetic videos, a GRU head beats an order-agnostic head.

The time-order classes come in pairs whose clips are each other's frames reversed, so any
head that ignores frame order is at chance within each pair.
"""

import pytest

from harkit.data.datasets import DatasetConfig
from harkit.experiments.evaluate import evaluate_run
from harkit.models.recipe import load_recipe
from harkit.synth import TIME_ORDER_PAIRS, SynthConfig, render_dataset
from harkit.train.trainer import train


def time_order_accuracy(run, store) -> float:
    names = {name for pair in TIME_ORDER_PAIRS for name in pair}
    rows = [row for row in evaluate_run(run, store=store).clip.per_class if row.name in names]
    return sum(row.recall for row in rows) / len(rows)


@pytest.mark.slow
def test_gru_beats_mean_pooling_on_time_order_classes(tmp_path):
    data = tmp_path / "synth"
    render_dataset(data, SynthConfig(num_actors=12, clips_per_actor=3, test_actors=3))
    dataset, store = DatasetConfig(root=data), tmp_path / "store"
    accuracy = {}
    for head in (["head.type=recurrent"], ["head.type=mean", "head.center=false"]):
        recipe = load_recipe("synthetic-gru", [*head, "optim.epochs=30"])
        run = tmp_path / head[0]
        train(recipe, dataset, run, store=store, progress=False)
        accuracy[recipe.head.type] = time_order_accuracy(run, store)
    assert accuracy["recurrent"] - accuracy["mean"] >= 0.30, accuracy
