"""Lightning callbacks and checkpoint I/O of harkit's training: atomic weights-only
checkpoints, RNG state carried across a resume, and per-rank weight digests."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.plugins import TorchCheckpointIO

from harkit.io import atomic_output
from harkit.train.run import load_weights_only

__all__ = [
    "AtomicCheckpointIO",
    "EpochProgressBar",
    "ReplicaDigest",
    "RngCheckpoint",
    "state_digest",
]


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state_dict (names, dtypes, bytes), for replica checks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class ReplicaDigest(Callback):
    """Each rank writes ``logs/replicas/rank{k}.sha256`` of its weights when training ends.

    Distributed replicas must stay identical; differing digests reveal a broken sync.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = state_digest(pl_module.model)  # type: ignore[arg-type]
        (self.folder / f"rank{trainer.global_rank}.sha256").write_text(digest + "\n")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file, fsynced and renamed over the old one (a kill -9
    leaves the previous checkpoint, never half of one), and read with ``weights_only=True``
    whoever asks (Lightning's resume included)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        with atomic_output(path, suffix=".ckpt") as tmp, open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return load_weights_only(Path(path))  # on the CPU, like Lightning's default


class RngCheckpoint(Callback):
    """Carry the torch / numpy / python RNG states in checkpoints and restore them on resume.

    Lightning does not, so a resumed run would drop out differently from an uninterrupted
    one. The training order and the loader workers' seeds are functions of the recipe seed and
    the epoch (:class:`harkit.train.loaders.EpochShuffle`): they need no state here. Stored as
    tensors and plain values: checkpoints still load with ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [
                torch.from_numpy(keys.astype(np.int64)),
                int(pos),
                int(has_gauss),
                float(gauss),
            ],
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state_dict["python"])
        cuda = state_dict.get("cuda")
        if (
            cuda is not None
            and torch.cuda.is_available()
            and len(cuda) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(cuda)


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar with the epoch counted from 1 of N, as every other harkit
    output counts it (Lightning's own shows its 0-based index)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        # Lightning's method with another description (calling it would print its own first)
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset()
        self.train_progress_bar.total = convert_inf(self.total_train_batches)
        self.train_progress_bar.initial = 0
        self.train_progress_bar.set_description(
            f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )
