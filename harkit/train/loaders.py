"""The loaders of a training run: a Lightning data module whose training order and worker
seeds are functions of the recipe seed and the epoch alone, so a resumed run draws what the
uninterrupted one drew."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from harkit.data.clips import EpochSeeded, collate_clips
from harkit.data.jobs import loader_worker_init
from harkit.train.data import TrainData

__all__ = ["ActionDataModule", "EpochShuffle", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 64-bit seed that is a function of ``(seed, epoch, stream)`` only."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0])


class EpochShuffle(RandomSampler):
    """Training order and worker seeds that are functions of ``(seed, epoch)`` alone.

    Each epoch's permutation comes from ``epoch_seed(seed, epoch, 0)``; ``workers`` (the
    loader's ``generator``, from which it draws the base seed torch seeds its workers with)
    is reseeded from ``epoch_seed(seed, epoch, 1)``. Lightning calls :meth:`set_epoch` before
    each epoch, so a resumed run shuffles and seeds its workers as the uninterrupted one did
    at that epoch; neither draws from the global torch RNG (dropout's). Under DDP Lightning
    swaps it for a ``DistributedSampler``, which also seeds by epoch (it is a RandomSampler
    so Lightning still shuffles there).
    """

    def __init__(self, data_source: Dataset, seed: int, epoch: int = 0) -> None:
        super().__init__(data_source)  # type: ignore[arg-type]
        self.seed, self.workers = seed, torch.Generator()
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.workers.manual_seed(epoch_seed(self.seed, epoch, 1))
        if isinstance(self.data_source, EpochSeeded):  # its jitter, new every epoch
            self.data_source.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, 0))
        yield from torch.randperm(self.num_samples, generator=order).tolist()


def _loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    shuffle: bool,
    *,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
) -> DataLoader:
    sampler = EpochShuffle(dataset, seed, epoch) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        # Training workers restart every epoch, seeded for that epoch: persistent ones would
        # carry RNG state from earlier epochs that a resumed run cannot rebuild.
        persistent_workers=workers > 0 and not shuffle,
        # never the global RNG: a base seed drawn from it would shift dropout after a resume
        generator=sampler.workers if sampler else torch.Generator().manual_seed(seed),
        # die with the trainer; training workers also seeded by (base seed, worker, rank)
        worker_init_fn=loader_worker_init(rank if shuffle else None) if workers > 0 else None,
    )


class ActionDataModule(L.LightningDataModule):
    """Train/val/test loaders (collate_clips); Lightning adds distributed samplers.

    The training order and worker seeds depend on ``seed`` and the epoch only (see
    :class:`EpochShuffle`), so a resumed run sees the batches an uninterrupted one saw.
    """

    def __init__(
        self, data: TrainData, batch_size: int, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        self.data, self.batch_size, self.num_workers = data, batch_size, num_workers
        self.seed = seed

    def _epoch_and_rank(self) -> tuple[int, int]:
        """The epoch the training loader starts at (a resumed run's epochs done: Lightning
        builds the loader, and its first workers, before it calls ``set_epoch``) and the
        global rank."""
        if self.trainer is None:
            return 0, 0
        return self.trainer.fit_loop.epoch_progress.current.processed, self.trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        epoch, rank = self._epoch_and_rank()
        return _loader(
            self.data.train,
            self.batch_size,
            self.num_workers,
            shuffle=True,
            seed=self.seed,
            epoch=epoch,
            rank=rank,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.data.val is None:
            return []
        return _loader(
            self.data.val, self.batch_size, self.num_workers, shuffle=False, seed=self.seed
        )

    def test_dataloader(self) -> DataLoader | list:
        if self.data.test is None:
            return []
        return _loader(
            self.data.test, self.batch_size, self.num_workers, shuffle=False, seed=self.seed
        )
