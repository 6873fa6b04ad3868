"""A toy training job in its own process, for tests that need a second process or a real kill.

``python -m tests.train.train_job RUN [--resume] [--hold FILE] [--kill-at E:B | --kill-at E:save]
[--workers N] [--jitter]``

``--hold FILE``: once training starts (the run folder locked), write ``FILE.started`` and wait
until FILE exists. ``--kill-at E:B``: SIGKILL this process before batch B of epoch E;
``E:save``: after epoch E's last.ckpt is written to its temp file, before the rename.
``--workers N``: ``optim.num_workers=N``. ``--jitter``: training items are random windows of
longer sequences plus noise (:class:`Jittered`), drawn where the loader draws them (workers).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

import harkit.io
from harkit.data.sampling import SamplingConfig, sample_indices
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import train
from tests.helpers.training import TimeOrderFeatures, toy_data

# Deterministic kernels, dropout and a step schedule: RNG, scheduler and optimizer state must
# all survive a resume for the weights to match an uninterrupted run.
RECIPE = [
    "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
    "head.hidden=[8]",
    "head.fc=[]",
    "head.dropout=0.3",
    "optim.batch_size=8",
    "optim.epochs=4",
    "optim.lr=0.01",
    "optim.scheduler=step",
    "optim.step_size=1",
    "optim.gamma=0.7",
    "optim.deterministic=true",
]


class Jittered(Dataset):
    """Training-time randomness as harkit's clip datasets draw it: a TSN window of 8 of 12
    steps from a generator seeded by ``(torch.initial_seed(), item)`` (``ClipDataset``), plus
    noise from the global torch RNG (torchvision's random transforms)."""

    def __init__(self, base: TimeOrderFeatures) -> None:
        self.base, self.sampling = base, SamplingConfig(strategy="tsn", num_frames=8)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        rng = np.random.default_rng([torch.initial_seed() % 2**63, i])
        picks = sample_indices(len(item["mask"]), self.sampling, train=True, rng=rng)
        video = item["video"][torch.from_numpy(picks.indices)]
        video = video + 0.2 * torch.randn(video.shape)
        return {**item, "video": video, "mask": torch.from_numpy(picks.mask)}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Hold(L.Callback):
    def __init__(self, release: Path) -> None:
        self.release = release

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Path(f"{self.release}.started").touch()
        while not self.release.exists():
            time.sleep(0.05)


class KillAt(L.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            _die()


def _kill_in_save(epoch: int) -> None:
    replace, seen = os.replace, []

    def dying_replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "last.ckpt":
            seen.append(dst)
            if len(seen) == epoch + 1:  # the temp file is complete; last.ckpt still the old one
                _die()
        replace(src, dst)

    harkit.io.os.replace = dying_replace  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--hold", type=Path)
    parser.add_argument("--kill-at")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--jitter", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe("fusion-gru", [*RECIPE, f"optim.num_workers={args.workers}"])
    callbacks: list[L.Callback] = []
    if args.hold:
        callbacks.append(Hold(args.hold))
    if args.kill_at:
        epoch, _, where = args.kill_at.partition(":")
        if where == "save":
            _kill_in_save(int(epoch))
        else:
            callbacks.append(KillAt(int(epoch), int(where)))
    dim = sum(feature_dims(recipe))
    data = toy_data(dim)
    if args.jitter:
        data.train = Jittered(TimeOrderFeatures(32, dim, steps=12))
    train(recipe, data, args.run, resume=args.resume, progress=False, callbacks=callbacks)


if __name__ == "__main__":
    main()
