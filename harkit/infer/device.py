"""Checking a torch device name before anything is loaded onto it."""

from __future__ import annotations

import re

from harkit.infer.errors import InferenceError

__all__ = ["check_device"]

_DEVICE = re.compile(r"cpu|mps|cuda(:\d{1,4})?")


def check_device(device: object, argument: str = "device") -> str:
    """``device`` if it is ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` and this machine has it;
    else an :class:`InferenceError` naming the value and what is allowed (a missing GPU is a
    bad argument, not a torch error deep in a model's ``.to()``)."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise InferenceError(f"{argument}: expected cpu, cuda, cuda:N or mps, got {device!r}")
    if device == "cpu":
        return device
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise InferenceError(
                f"{argument}: expected a device this machine has (no MPS here; use cpu), "
                f"got {device!r}"
            )
        return device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        have = f"CUDA devices 0-{count - 1}" if count else "no CUDA device; use cpu"
        raise InferenceError(
            f"{argument}: expected a device this machine has ({have}), got {device!r}"
        )
    return device
