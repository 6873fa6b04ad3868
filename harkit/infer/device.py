"""Checking a torch device name before anything is loaded onto it."""

from __future__ import annotations

import re

from harkit.infer.errors import InferenceError

__all__ = ["check_device", "device_problem"]

_DEVICE = re.compile(r"cpu|mps|cuda(:\d{1,4})?")


def device_problem(device: object) -> str | None:
    """Why ``device`` is not a torch device this machine has (``None`` when it is): ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``. A missing GPU is a bad argument, not a torch error deep
    in a model's ``.to()``."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        return f"expected cpu, cuda, cuda:N or mps, got {device!r}"
    if device == "cpu":
        return None
    import torch

    if device == "mps":
        if torch.backends.mps.is_available():
            return None
        return f"expected a device this machine has (no MPS here; use cpu), got {device!r}"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index < count:
        return None
    have = f"CUDA devices 0-{count - 1}" if count else "no CUDA device; use cpu"
    return f"expected a device this machine has ({have}), got {device!r}"


def check_device(device: object, argument: str = "device") -> str:
    """``device`` if this machine has it (see :func:`device_problem`), else an
    :class:`InferenceError` naming ``argument``, the value and what is allowed."""
    problem = device_problem(device)
    if problem:
        raise InferenceError(f"{argument}: {problem}")
    return device  # type: ignore[return-value]
