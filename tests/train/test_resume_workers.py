"""Exact resume with DataLoader workers: the training order and the workers' seeds are functions
of the recipe seed and the epoch, so a run killed with SIGKILL and resumed with
``optim.num_workers=2`` ends with the weights of an uninterrupted run (random windows and noise
drawn in the workers included)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from harkit.train.loaders import EpochShuffle, _loader
from harkit.train.run import read_run_info

REPO = Path(__file__).resolve().parents[2]


class _Draws(Dataset):
    """Each item is one draw from the torch, numpy and python RNGs of the process loading it."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict[str, Any]:
        draws = [torch.rand(()).item(), np.random.random(), random.random()]
        return {
            "video": torch.tensor([draws], dtype=torch.float64),
            "mask": torch.ones(1, dtype=torch.bool),
            "label": 0,
            "index": i,
        }


def _epoch(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([b["index"] for b in batches]), torch.cat([b["video"] for b in batches])


# forkserver (Python 3.14's Linux default): each of the 16 workers imports torch anew, ~25 s
@pytest.mark.parametrize(
    "start_method", ["fork", pytest.param("forkserver", marks=pytest.mark.slow)], indirect=True
)
def test_order_and_worker_draws_depend_on_seed_and_epoch_only(start_method: str) -> None:
    before = torch.get_rng_state()
    running = _loader(_Draws(), 4, 2, shuffle=True, seed=7)
    epochs = []
    for epoch in range(3):  # what Lightning does: set_epoch, then a new iterator (new workers)
        running.sampler.set_epoch(epoch)
        epochs.append(_epoch(running))
    # Loaders never draw from the global RNG (dropout's): drawing shifted it after a resume.
    assert torch.equal(torch.get_rng_state(), before)
    # A resumed run builds its loader at the epoch it resumes at.
    order, draws = _epoch(_loader(_Draws(), 4, 2, shuffle=True, seed=7, epoch=2))
    assert torch.equal(order, epochs[2][0]) and torch.equal(draws, epochs[2][1])
    assert not torch.equal(epochs[1][0], epochs[2][0])  # a new order every epoch ...
    assert not torch.isin(epochs[1][1], epochs[2][1]).any()  # ... and new worker draws
    # Another DDP rank's workers draw other numbers (Lightning's per-rank worker seeding).
    other_rank = _epoch(_loader(_Draws(), 4, 2, shuffle=True, seed=7, epoch=2, rank=1))[1]
    assert not torch.isin(other_rank, draws).any()
    assert not torch.equal(_epoch(_loader(_Draws(), 4, 2, shuffle=True, seed=8))[0], epochs[0][0])


def test_epoch_shuffle_is_a_random_sampler_so_ddp_still_shuffles() -> None:
    from lightning.pytorch.utilities.data import _is_dataloader_shuffled

    loader = _loader(_Draws(), 4, 0, shuffle=True, seed=0)
    assert isinstance(loader.sampler, EpochShuffle) and _is_dataloader_shuffled(loader)
    assert not _is_dataloader_shuffled(_loader(_Draws(), 4, 0, shuffle=False))


# -- a real kill -9 ------------------------------------------------------------------------------

JOB = ["--workers", "2", "--jitter"]


def _job(run: Path, *args: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.train.train_job", str(run), *JOB, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, -9), proc.stderr[-3000:]
    return proc.returncode


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("whole") / "run"
    assert _job(run) == 0
    return run


@pytest.mark.slow
@pytest.mark.parametrize("point", ["1:save", "2:1"])
def test_killed_run_with_loader_workers_resumes_to_the_uninterrupted_weights(
    point: str, uninterrupted: Path, tmp_path: Path
) -> None:
    # Killed while epoch 1's last.ckpt is renamed into place, or before batch 1 of epoch 2;
    # 4 epochs of 4 batches, training items jittered in 2 workers (train_job.Jittered).
    run = tmp_path / "run"
    assert _job(run, "--kill-at", point) == -9
    assert not (run / "model.safetensors").exists()
    assert _job(run, "--resume") == 0

    for ckpt in ("last.ckpt", "best.ckpt"):  # last.ckpt: the final weights
        a, b = _state(uninterrupted / "checkpoints" / ckpt), _state(run / "checkpoints" / ckpt)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), (
            ckpt,
            max((a[k] - b[k]).abs().max().item() for k in a),
        )
    a, b = load_file(uninterrupted / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    info_a, info_b = read_run_info(uninterrupted), read_run_info(run)
    for key in ("epochs_run", "global_step", "exported", "best_score"):
        assert getattr(info_a, key) == getattr(info_b, key), key


def test_clip_jitter_changes_every_epoch_without_workers(tmp_path: Path) -> None:
    # Found with the resume fix: in the main process the torch seed never changes, so the
    # temporal jitter of end-to-end training (num_workers=0) was the same every epoch.
    from harkit.data.clips import ClipDataset
    from harkit.data.datasets import DatasetConfig, load_index
    from harkit.data.sampling import SamplingConfig
    from harkit.synth.video import write_video

    frames = np.zeros((60, 16, 16, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(60) * 4  # the frame number, readable back
    write_video(tmp_path / "a" / "clip.mp4", frames, fps=10)
    write_video(tmp_path / "b" / "clip.mp4", frames, fps=10)
    index = load_index(DatasetConfig(root=tmp_path))
    clips = ClipDataset(index, SamplingConfig(strategy="tsn", num_frames=4), train=True)
    sampler = EpochShuffle(clips, seed=0)

    def picked(epoch: int) -> list[int]:
        sampler.set_epoch(epoch)
        return clips[0]["video"][:, 0, 0, 0].tolist()

    first, second = picked(0), picked(1)
    assert first != second
    assert picked(0) == first  # the same epoch draws the same clip again (exact resume)
