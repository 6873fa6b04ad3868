"""A toy training job in its own process, for tests that need a second process or a real kill.

``python -m tests.train.train_job RUN [--resume] [--hold FILE] [--kill-at E:B | --kill-at E:save]``

``--hold FILE``: once training starts (the run folder locked), write ``FILE.started`` and wait
until FILE exists. ``--kill-at E:B``: SIGKILL this process before batch B of epoch E;
``E:save``: after epoch E's last.ckpt is written to its temp file, before the rename.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

import harkit.io
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.train import train
from tests.train.conftest import toy_data

# Deterministic kernels, dropout and a step schedule: RNG, scheduler and optimizer state must
# all survive a resume for the weights to match an uninterrupted run.
RECIPE = [
    "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
    "head.hidden=[8]", "head.fc=[]", "head.dropout=0.3", "optim.batch_size=8",
    "optim.epochs=4", "optim.lr=0.01", "optim.scheduler=step", "optim.step_size=1",
    "optim.gamma=0.7", "optim.deterministic=true",
]  # fmt: skip


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe("fusion-gru", RECIPE)
    callbacks: list[L.Callback] = []
    if args.hold:
        callbacks.append(Hold(args.hold))
    if args.kill_at:
        epoch, _, where = args.kill_at.partition(":")
        if where == "save":
            _kill_in_save(int(epoch))
        else:
            callbacks.append(KillAt(int(epoch), int(where)))
    data = toy_data(sum(feature_dims(recipe)))
    train(recipe, data, args.run, resume=args.resume, progress=False, callbacks=callbacks)


if __name__ == "__main__":
    main()
