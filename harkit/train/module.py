"""Lightning module around ``build_model(recipe, num_classes)``: loss, optimiser, schedule."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from harkit.data.clips import SkipReport
from harkit.errors import HarkitError
from harkit.heads import (
    RecurrentHead,
    masked_step_cross_entropy,
    unwrap_head,
    vote_logits,
)
from harkit.models.builder import CRNN, build_model
from harkit.models.recipe import OptimConfig, Recipe

__all__ = ["ActionModule", "NonFiniteLossError", "build_optimizer", "step_logits"]


def _vote_head(model: nn.Module) -> nn.Module | None:
    head = model.head if isinstance(model, CRNN) else model
    inner = unwrap_head(head)
    if isinstance(inner, RecurrentHead) and inner.pooling == "vote":
        return head  # a wrapper's forward_steps normalises / centers before the steps
    return None


def step_logits(model: nn.Module, x: Tensor, lengths: Tensor) -> Tensor | None:
    """Per-step logits ``(B, T, C)`` of a 'vote' model (features head or CRNN), else None.

    Vote heads learn from every frame's label (seed 002), so training needs these rather
    than the voted clip logits.
    """
    head = _vote_head(model)
    if head is None:
        return None
    if isinstance(model, CRNN):
        b, t = x.shape[:2]
        x = model.embed(model.encoder(x.flatten(0, 1))).view(b, t, -1)
    return head.forward_steps(x, lengths)


def build_optimizer(params: list[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam / SGD (with momentum) / RMSprop with the recipe's lr and weight decay."""
    if optim.optimizer == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    return torch.optim.RMSprop(params, lr=optim.lr, weight_decay=optim.weight_decay)


class NonFiniteLossError(HarkitError):
    """Training diverged: a loss of NaN or Inf."""


class ActionModule(L.LightningModule):
    """Trains ``build_model(recipe, num_classes)`` with cross-entropy on collated clip batches.

    ``monitor`` is the metric the plateau scheduler watches (``val/acc``, or ``train/acc``
    when there is no validation split). Batches are :func:`harkit.data.collate_clips` dicts;
    skipped videos go to ``skip_report``.
    """

    def __init__(
        self,
        recipe: Recipe,
        num_classes: int,
        *,
        model: nn.Module | None = None,
        monitor: str = "val/acc",
        skip_report: SkipReport | None = None,
    ) -> None:
        super().__init__()
        self.recipe = recipe
        self.num_classes = num_classes
        self.model = model if model is not None else build_model(recipe, num_classes)
        self.monitor = monitor
        self.skip_report = skip_report
        self.steps_trained = 0
        """Training batches that had a loss (not all videos skipped), kept in checkpoints."""
        # counts, not per-batch means: exact over uneven batches and across DDP ranks
        self.train_accuracy = MulticlassAccuracy(num_classes, average="micro")
        self.val_accuracy = MulticlassAccuracy(num_classes, average="micro")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["steps_trained"] = self.steps_trained

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.steps_trained = int(checkpoint.get("steps_trained", 1))  # older runs: trained

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.model(x, lengths)

    def _shared_step(self, batch: dict[str, Any], stage: str, batch_idx: int = 0) -> Tensor | None:
        if self.skip_report is not None and batch.get("skipped"):
            self.skip_report.record_batch(batch)
        if "video" not in batch:  # every video of the batch was unreadable
            return None
        x, lengths, y = batch["video"], batch["lengths"], batch["label"]
        steps = step_logits(self.model, x, lengths) if stage == "train" else None
        if steps is not None:
            loss = masked_step_cross_entropy(steps.float(), lengths, y)
            logits = vote_logits(steps, lengths)
        else:
            logits = self.model(x, lengths)
            loss = F.cross_entropy(logits.float(), y)
        if not bool(torch.isfinite(loss)):
            # every later step would be NaN too: a run of NaN weights must not end "trained"
            raise NonFiniteLossError(
                f"{stage} loss is {loss.item()} at epoch {self.current_epoch + 1}, batch "
                f"{batch_idx + 1}: try a lower optim.lr (now {self.recipe.optim.lr}) or "
                "optim.grad_clip, and check the inputs"
            )
        if stage == "train":
            self.steps_trained += 1
        accuracy = self.train_accuracy if stage == "train" else self.val_accuracy
        accuracy(logits.detach(), y)
        size = int(y.shape[0])
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        self.log(
            f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "train", batch_idx)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        return self._shared_step(batch, "val", batch_idx)

    def configure_optimizers(self) -> Any:
        optim = self.recipe.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, optim)
        if optim.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, optim.step_size, optim.gamma)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
        if optim.scheduler == "plateau":
            # Halve the early-stopping patience so the LR drops before training gives up.
            patience = max(1, optim.early_stopping // 2) if optim.early_stopping else 2
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=optim.gamma, patience=patience
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
            }
        return optimizer
