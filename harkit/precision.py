"""Which float precision the fast paths run in: one decision for extraction and inference.

fp32 is the reference. ``'auto'`` picks fp16 on CUDA, bf16 on a CPU with AMX tiles and fp32
elsewhere: without native bf16 it is emulated and several times slower than fp32, and with
AVX512-BF16 alone (no AMX) fp32 on onnxruntime was still faster. On such a 2-core CPU
(``benchmarks/extract.py``, whole job): GoogLeNet 60 vs 37 frames/s, ResNet152 9.0 vs 4.8 and
Inception-ResNet-V2 8.6 vs 4.7, fp32 (onnxruntime) vs bf16 (compiled / eager autocast). ``HARKIT_PRECISION=
fp32|bf16|fp16|auto`` overrides what ``'auto'`` means, so the same code (and the parity
tests) can be forced to either precision on any CPU.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import torch

from harkit.errors import HarkitError

__all__ = [
    "FEATURE_TOLERANCE",
    "PRECISION_ENV",
    "Precision",
    "bf16_fast",
    "bf16_native",
    "probe_precisions",
    "resolve_precision",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: Environment variable that decides what ``precision='auto'`` resolves to.
PRECISION_ENV = "HARKIT_PRECISION"

#: Largest relative feature error (``||fast - fp32|| / ||fp32||`` per item) a fast path may
#: have in each precision before harkit calls it wrong. fp32 paths differ from the reference
#: in op order only (<= 1e-6 measured); bf16 keeps 8 mantissa bits: GoogLeNet 9.4e-3 and
#: Inception-ResNet-V2 4.7e-3 off in eager bf16, but random-weight ResNet152 3.3e-2 compiled,
#: so the compile check also accepts twice eager's own error.
FEATURE_TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 3e-2}


def bf16_native(device: torch.device) -> bool:
    """True where bf16 autocast runs on hardware instead of being emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # builds without the probe
            return False
    return False


def bf16_fast(device: torch.device) -> bool:
    """True where bf16 is faster than fp32: CUDA with bf16, a CPU with AMX tiles (see the
    module docstring for AVX512-BF16 alone)."""
    if device.type != "cpu":
        return bf16_native(device)
    try:
        return bf16_native(device) and bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # builds without the probe
        return False


def resolve_precision(precision: Precision, device: torch.device) -> str:
    """The concrete precision (``'fp32'``, ``'bf16'`` or ``'fp16'``) that ``precision`` means
    on ``device``; ``'auto'`` follows ``$HARKIT_PRECISION`` when it is set."""
    if precision == "auto":
        forced = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
        if forced not in get_args(Precision):
            raise HarkitError(
                f"{PRECISION_ENV}={os.environ[PRECISION_ENV]!r} is not a precision; "
                f"expected one of {', '.join(get_args(Precision))}"
            )
        precision = forced  # type: ignore[assignment]
    if precision != "auto":
        if precision not in get_args(Precision):
            raise HarkitError(
                f"unknown precision {precision!r}; expected one of {', '.join(get_args(Precision))}"
            )
        if precision == "fp16" and device.type == "cpu":
            raise HarkitError("precision 'fp16' needs a GPU; on a CPU use 'bf16' or 'fp32'")
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if bf16_fast(device) else "fp32"


def probe_precisions(
    precision: Precision, device: torch.device, low_precision_ok: bool = True
) -> list[str]:
    """The precisions a measured engine choice (:mod:`harkit.engine_choice`) may try for
    ``precision``: an explicit one, or what ``$HARKIT_PRECISION`` forces ``'auto'`` to, alone;
    plain ``'auto'`` fp32 and, where bf16 is native (not emulated) and the network's bf16
    features are within tolerance (``low_precision_ok``), bf16 too (fp16 on CUDA)."""
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if precision != "auto" or forced not in ("", "auto"):
        return [resolve_precision(precision, device)]
    if device.type == "cuda":
        return ["fp32", "fp16"] if low_precision_ok else ["fp32"]
    return ["fp32", "bf16"] if low_precision_ok and bf16_native(device) else ["fp32"]
