"""In-memory feature datasets (the feature store's item contract) and a small features
recipe for the training and experiment tests."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from harkit.models.builder import feature_dims
from harkit.models.recipe import Recipe, load_recipe
from harkit.train import TrainData


class TimeOrderFeatures(Dataset):
    """Class 0: a direction ramps up over time; class 1: the same clip played backwards.

    Both classes have the same distribution of per-step features (only their order differs),
    so an order-agnostic (mean-pooled) head sits at chance while a recurrent head learns it.
    Items are exactly FeatureDataset's: ``video (T, D)``, ``mask (T,)``, ``label``, ``index``.
    """

    def __init__(
        self,
        n: int,
        dim: int,
        steps: int = 8,
        seed: int = 0,
        classes: int = 2,
        ragged: bool = False,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        direction = torch.randn(dim, generator=torch.Generator().manual_seed(1234))
        direction = direction / direction.norm() * 3
        self.items: list[dict[str, Any]] = []
        for i in range(n):
            label = i % classes
            t = steps - (i % 3) if ragged else steps
            ramp = torch.linspace(-1, 1, t)
            if label % 2 == 1:
                ramp = ramp.flip(0)
            video = ramp[:, None] * direction + 0.3 * torch.randn(t, dim, generator=g)
            video += 0.5 * torch.randn(dim, generator=g)  # per-clip offset, constant in time
            self.items.append(
                {
                    "video": video,
                    "mask": torch.ones(t, dtype=torch.bool),
                    "label": label,
                    "index": i,
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def toy_data(
    dim: int,
    n_train: int = 32,
    n_val: int = 8,
    n_test: int = 16,
    steps: int = 8,
    ragged: bool = False,
) -> TrainData:
    return TrainData(
        TimeOrderFeatures(n_train, dim, steps, seed=0, ragged=ragged),
        TimeOrderFeatures(n_val, dim, steps, seed=1) if n_val else None,
        TimeOrderFeatures(n_test, dim, steps, seed=2),
        ["forward", "backward"],
        {
            "dataset": {"name": "toy", "split": 1},
            "counts": {"train": n_train, "val": n_val, "test": n_test},
            "leakage": "not applicable (synthetic features)",
        },
    )


def small_recipe(*extra: str, head: str = "recurrent") -> Recipe:
    """fusion-gru on a resnet18 layer1 (random weights), a 16-unit head if recurrent, no fc
    layers, batch 8, 2 epochs, lr 0.01; ``extra`` overrides on top."""
    hidden = ["head.hidden=[16]"] if head == "recurrent" else []
    return load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            f"head.type={head}",
            *hidden,
            "head.fc=[]",
            "optim.batch_size=8",
            "optim.epochs=2",
            "optim.lr=0.01",
            *extra,
        ],
    )


def recipe_dim(recipe: Recipe) -> int:
    """The head's input size for a features recipe."""
    return sum(feature_dims(recipe))
