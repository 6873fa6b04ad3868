"""A trainable encoder trains in train mode (its batch norm learns); a frozen one stays in eval."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from harkit.config import parse_config
from harkit.models.recipe import Recipe
from harkit.train import TrainData, train
from harkit.train.run import load_run


class PixelClips(Dataset):
    """End-to-end items (ClipDataset's contract): ``video (T, C, H, W)``, mask, label."""

    def __init__(self, n: int, frames: int = 4, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [
            {
                "video": torch.randn(frames, 3, size, size, generator=g) + (i % 2),
                "mask": torch.ones(frames, dtype=torch.bool),
                "label": i % 2,
                "index": i,
            }
            for i in range(n)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _crnn(fine_tune: bool) -> Recipe:
    return parse_config(
        Recipe,
        {
            "name": "tiny-crnn",
            "mode": "end_to_end",
            "input": {
                "sampling": {"strategy": "uniform", "num_frames": 4},
                "transform": {"resize": 32, "crop_size": 32},
            },
            "network": {
                "type": "crnn",
                "encoder": "resnet18",
                "encoder_weights": "none",
                "fine_tune": fine_tune,
                "embed": [16],
            },
            "head": {"type": "recurrent", "hidden": 8},
            "optim": {"epochs": 1, "batch_size": 4, "val_fraction": 0.0},
        },
        source="test",
    )


@pytest.mark.parametrize("fine_tune", [True, False])
def test_batch_norm_statistics_move_only_when_the_encoder_trains(fine_tune, tmp_path: Path):
    data = TrainData(
        PixelClips(8),
        None,
        PixelClips(4),
        ["a", "b"],
        {"dataset": {"name": "toy"}, "leakage": "not applicable"},
    )
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(_crnn(fine_tune), data, run, progress=False)
    # a frozen encoder is in eval mode on purpose: no "modules in eval mode" noise
    assert not [w for w in caught if "eval mode" in str(w.message)]
    _, _, model = load_run(run)
    bn = model.encoder.net.bn1
    # a fresh BatchNorm holds mean 0 / var 1; training in train mode moves both
    moved = not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert moved == fine_tune
    assert int(bn.num_batches_tracked) == (2 if fine_tune else 0)  # 8 clips in batches of 4


@pytest.mark.slow
def test_from_scratch_cnn2d_gru_learns_the_synthetic_motions(tmp_path: Path):
    # Globally pooled 2D maps made this ablation sit at chance (7.8% of 10 classes): what
    # moves where was pooled away. Held-out actors, 4 motion classes, chance is 25%; the
    # last epoch's test accuracy ran 0.56-0.75 over epochs 8-12, so the bar is twice chance.
    from harkit.data.datasets import DatasetConfig
    from harkit.experiments.evaluate import evaluate_run
    from harkit.models.recipe import load_recipe
    from harkit.synth import SynthConfig, render_dataset

    data = tmp_path / "synth"
    motions = ["move_left", "move_right", "move_up", "move_down"]
    render_dataset(
        data,
        SynthConfig(
            classes=motions, num_actors=6, clips_per_actor=2, num_frames=16, size=48, test_actors=2
        ),
    )
    recipe = load_recipe(
        "ablations/cnn2d-gru",
        [
            "network.size=48",
            "input.sampling.num_frames=8",
            "optim.epochs=12",
            "optim.batch_size=4",
            "optim.val_fraction=0",
        ],
    )
    run = tmp_path / "run"
    train(recipe, DatasetConfig(root=data), run, progress=False)
    assert evaluate_run(run).clip.top1 >= 0.5
