"""How each network of a :class:`~harkit.features.extractor.FeatureExtractor` runs: the
fixed rule (:func:`resolve_engine`, :func:`sources_precision`), the record of what was
decided (:class:`EnginePlan`), and a network's form for each engine: :func:`compile_network`
for ``torch.compile``, :func:`graph_spec` and :class:`NamedOutputs` for onnxruntime (exported
once to harkit's graph cache, :mod:`harkit.onnx`). The measured choice is
:mod:`harkit.engine_choice`.

On a 2-core AVX2 CPU onnxruntime ran MobileNetV3-Large 5x, GoogLeNet 1.7x and ResNet152 1.6x
faster than eager channels-last PyTorch, so the fixed rule picks it wherever the precision is
fp32. Segment (3D) networks stay on PyTorch (their exported graphs were not measured). Like
precision, the engine changes features only within float tolerance, so it is not part of the
feature-store key.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from harkit.backbones import get_backbone_spec, weights_tag
from harkit.engine_choice import ProbeSettings, Trial
from harkit.features.errors import FeatureExtractorError
from harkit.features.preprocess import SourceGroup
from harkit.models.recipe import FeatureSource
from harkit.onnx import GraphSpec, onnxruntime_available
from harkit.precision import Precision, resolve_precision

__all__ = [
    "COMPILE_MIN_VIDEOS",
    "PROBE_MIN_VIDEOS",
    "Engine",
    "EnginePlan",
    "NamedOutputs",
    "auto_compile",
    "compile_network",
    "graph_spec",
    "probe_settings",
    "resolve_engine",
    "sources_precision",
]

Engine = Literal["auto", "torch", "onnx"]


def compile_network(net: torch.nn.Module, freezing: bool = True) -> torch.nn.Module:
    """``torch.compile`` for inference at one batch shape (callers pad the last batch).

    Freezing makes the weights constants, so inductor folds batch norms into the convolutions
    and lays out (and under autocast casts) the oneDNN weights once instead of on every call.
    It miscompiles Inception-ResNet-V2 (17% off in fp32 and bf16 alike, torch 2.14), which
    :class:`~harkit.features.extractor.FeatureExtractor` catches on the first batch.
    """
    return torch.compile(net, dynamic=False, options={"freezing": freezing})


@dataclass
class EnginePlan:
    """How one network runs, and how that was decided (``chosen_by``): ``'explicit'`` (the
    caller's engine), ``'rule'`` (the fixed rule), ``'probe'`` (measured in this run) or
    ``'cache'`` (measured earlier on this CPU)."""

    engine: str
    """``'onnx'`` or ``'torch'``."""
    precision: str
    compiled: bool
    chosen_by: str
    trials: dict[str, Trial] | None = None
    """The probe's measurements, for ``'probe'`` and ``'cache'``."""
    batch: int | None = None
    """Items per network call when not the extractor's ``chunk_size`` (compiled candidates:
    :data:`~harkit.features.extractor.COMPILED_CHUNK`)."""

    @property
    def name(self) -> str:
        """``'onnx-fp32'``, ``'compiled-bf16'``, ``'eager-fp32'``, ...: a probe candidate."""
        kind = "onnx" if self.engine == "onnx" else "compiled" if self.compiled else "eager"
        return f"{kind}-{self.precision}"

    @classmethod
    def named(cls, name: str, chosen_by: str, trials: dict[str, Trial] | None = None) -> EnginePlan:
        kind, _, precision = name.partition("-")
        if kind not in ("onnx", "compiled", "eager") or not precision:
            raise FeatureExtractorError(f"unknown engine candidate {name!r}")
        engine = "onnx" if kind == "onnx" else "torch"
        return cls(engine, precision, kind == "compiled", chosen_by, trials)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine": self.name,
            "precision": self.precision,
            "chosen_by": self.chosen_by,
        }
        if self.batch is not None:
            out["batch"] = self.batch
        if self.trials:
            out["probe"] = {
                name: {"items_per_s": t.items_per_s, "error": t.error, "refused": t.refused}
                for name, t in self.trials.items()
            }
        return out


def sources_precision(
    sources: Sequence[FeatureSource], precision: Precision, device: torch.device
) -> str:
    """:func:`resolve_precision` for these sources: ``'auto'`` stays fp32 when a backbone's
    reduced-precision features are out of tolerance (``BackboneSpec.low_precision``)."""
    resolved = resolve_precision(precision, device)
    unsafe = any(not get_backbone_spec(s.backbone).low_precision for s in sources)
    if precision == "auto" and resolved != "fp32" and unsafe:
        return "fp32"
    return resolved


def resolve_engine(engine: Engine, device: torch.device, precision: str) -> str:
    """``'auto'`` -> ``'onnx'`` on a CPU running fp32 when onnxruntime is installed, else torch.

    CUDA and reduced precision (bf16 CPUs) stay on PyTorch: the exported graphs are
    fp32 and run on onnxruntime's CPU provider only.
    """
    if engine not in ("auto", "torch", "onnx"):
        raise FeatureExtractorError(f"unknown engine {engine!r}; expected auto, torch or onnx")
    if engine == "onnx":
        if device.type != "cpu":
            raise FeatureExtractorError(f"engine='onnx' runs on the CPU only, not {device}")
        if not onnxruntime_available():
            raise FeatureExtractorError(
                "engine='onnx' needs the onnxruntime package (pip install onnxruntime)"
            )
        return "onnx"
    if engine == "auto" and device.type == "cpu" and precision == "fp32":
        return "onnx" if onnxruntime_available() else "torch"
    return "torch"


class NamedOutputs(torch.nn.Module):
    """A backbone as a tuple of its named outputs, the form the ONNX exporter takes."""

    def __init__(self, net: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.net = net
        self.names = list(names)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(x)
        if not isinstance(out, dict):
            return (out,)
        return tuple(out[name] for name in self.names)


def graph_spec(group: SourceGroup, shape: Sequence[int]) -> GraphSpec:
    """The cached graph of ``group``'s network for items of ``shape`` ``(C, S, S)``: fp32,
    dynamic batch, outputs ``features<i>`` in the order of the group's output names.

    The weights are named by their tag (a file's hash, or the fixed-seed init of ``'none'``,
    built by harkit, whose version is in the cache key), so no weights are hashed per run.
    """
    names = tuple(f"features{i}" for i in range(len(group.output_names)))
    return GraphSpec(
        name=group.backbone,
        identity={
            "backbone": group.backbone,
            "weights": weights_tag(group.weights),
            "outputs": group.output_names,
            "grid": group.grid,
        },
        input_shape=(2, *shape),
        input_names=("frames",),
        output_names=names,
        dynamic_axes={name: {0: "batch"} for name in ("frames", *names)},
    )


#: Videos from which ``compile=None`` compiles the backbones (see :func:`auto_compile`).
COMPILE_MIN_VIDEOS = 100


def auto_compile(
    videos: int,
    sources: Sequence[FeatureSource],
    device: str | torch.device | None = None,
    precision: Precision = "auto",
    engine: Engine = "auto",
) -> bool:
    """Whether an extraction of ``videos`` videos should ``torch.compile`` its backbones.

    Yes on a CPU running bf16 on the PyTorch engine (eager autocast re-lays out and re-casts
    every weight on every call; compiled and frozen it does that once) when a C++ compiler is
    there for inductor and the job is long enough (:data:`COMPILE_MIN_VIDEOS`) to repay a
    first compile of a minute or more (inductor caches it for later runs). fp32 CPUs run
    onnxruntime, which needs no compiling; CUDA stays eager (not measured here).
    """
    dev = _job_device(device)
    if (
        dev.type != "cpu"
        or engine == "onnx"
        or sources_precision(sources, precision, dev) != "bf16"
    ):
        return False
    return _compiling_pays(videos)


def _job_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _compiling_pays(videos: int) -> bool:
    """A job of ``videos`` repays a first compile, and inductor has a C++ compiler."""
    compiler = os.environ.get("CXX") or "c++"
    return videos >= COMPILE_MIN_VIDEOS and shutil.which(compiler.split()[0]) is not None


#: Videos from which ``engine='auto'`` measures the engines when this CPU has no cached choice
#: (see :func:`probe_settings`): the probe runs each candidate on the first batch 4 times.
PROBE_MIN_VIDEOS = 20


def probe_settings(
    videos: int,
    device: str | torch.device | None = None,
    engine: Engine = "auto",
    compile: bool | None = None,
) -> ProbeSettings | None:
    """How an extraction of ``videos`` videos chooses its engines by measurement, or ``None``
    for the caller's (or the fixed) rule: ``engine='auto'`` on a CPU without ``compile=True``.

    The choice is measured on the first batch when no earlier job on this CPU cached one and
    the job has :data:`PROBE_MIN_VIDEOS` videos (a smaller job takes a cached choice or the
    fixed rule). Compiled candidates are tried with ``compile=None`` where :func:`auto_compile`
    would compile on bf16 (a C++ compiler, :data:`COMPILE_MIN_VIDEOS` videos), whatever the
    precision; ``compile=False`` leaves them out.
    """
    if engine != "auto" or compile is True or _job_device(device).type != "cpu":
        return None
    may_compile = compile is None and _compiling_pays(videos)
    return ProbeSettings(compile=may_compile, measure=videos >= PROBE_MIN_VIDEOS)
