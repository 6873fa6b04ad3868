"""Whether a recipe's training state fits in the memory available, checked before anything
is allocated (the model is built on the meta device)."""

from __future__ import annotations

import torch

from harkit.models.builder import build_model
from harkit.models.recipe import Recipe
from harkit.train.run import RunError

__all__ = ["TRAINING_BYTES_PER_PARAMETER", "check_model_fits"]


TRAINING_BYTES_PER_PARAMETER = 16
"""fp32 weights, their gradients and Adam's two moments."""


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_model_fits(recipe: Recipe, num_classes: int = 2) -> None:
    """Refuse, before anything is allocated, a model whose training state cannot fit in the
    memory available (``head.hidden=65536`` asked for 51 GB and died in a traceback).

    The model is built on the meta device (shapes only), an end-to-end encoder without its
    pretrained weights (the sizes are the same; nothing is read or downloaded).
    """
    if recipe.network is not None and recipe.network.encoder_weights != "none":
        network = recipe.network.model_copy(update={"encoder_weights": "none"})
        recipe = recipe.model_copy(update={"network": network})
    try:
        with torch.device("meta"):
            model = build_model(recipe, num_classes)
    except Exception:  # e.g. a pretrained encoder's weights cannot load onto meta tensors
        return
    params = sum(p.numel() for p in model.parameters())
    need, available = params * TRAINING_BYTES_PER_PARAMETER, _available_memory()
    if available is not None and need > available:
        raise RunError(
            f"recipe {recipe.name!r}: its model has {params:,} parameters, about "
            f"{need / 2**30:.1f} GiB to train (weights, gradients, optimizer state), but "
            f"{available / 2**30:.1f} GiB of memory is available; choose smaller sizes "
            "(head.hidden, head.fc, network.units, ...)"
        )
