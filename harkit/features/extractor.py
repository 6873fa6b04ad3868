"""`FeatureExtractor`: one decoded clip -> per-time-step features of several frozen backbones.

Each backbone gets its own preprocessing from its spec (input size, mean/std), so Inception-
ResNet-V2 sees 299 px and GoogLeNet 224 px crops of the same frames. Sources that share a
network (backbone + weights + stream, e.g. two layers of ResNet50) run it once. Frame
backbones run over the T frames in chunks; segment backbones give one feature per segment.

The fast path is ``channels_last`` memory format plus autocast (bf16 on CPUs with native bf16
support, fp16 on CUDA) and optionally ``torch.compile``; ``precision='fp32'`` is the
reference. The extractor knows nothing about the feature store, so inference uses it too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harkit.backbones import BackboneSpec, create_backbone, get_backbone_spec, weights_tag
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.errors import HarkitError
from harkit.flow.dataset import flow_to_tensor
from harkit.models.recipe import FeatureSource

__all__ = [
    "FeatureExtractor",
    "FeatureExtractorError",
    "Precision",
    "Preprocessor",
    "resolve_precision",
    "source_key",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class FeatureExtractorError(HarkitError):
    """The input does not fit the requested sources (missing flow, wrong clip shape, ...)."""


def source_key(source: FeatureSource) -> str:
    """Stable name of a source: ``'<stream>:<backbone>:<weights tag>:<layer or pooled>'``."""
    return f"{source.stream}:{source.backbone}:{weights_tag(source.weights)}:" + (
        source.layer or "pooled"
    )


def resolve_precision(precision: Precision, device: torch.device) -> str:
    """``'auto'`` -> fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512-BF16/AMX), else fp32.

    Without native support, CPU bf16 is emulated and slower than fp32, so auto avoids it.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bf16"
        except (AttributeError, RuntimeError):  # older builds without the probe
            pass
    return "fp32"


@dataclass(frozen=True)
class _Group:
    """One network run: the sources it feeds and how its input is prepared."""

    backbone: str
    weights: str
    stream: str
    spec: BackboneSpec
    layers: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]  # (source key, output name: 'pooled' or a layer)

    @property
    def prep_key(self) -> tuple:
        # groups with equal preprocessing share one preprocessed tensor
        return (self.stream, self.spec.input_size, self.spec.mean, self.spec.std)


def _group_sources(sources: Sequence[FeatureSource]) -> list[_Group]:
    order: dict[tuple[str, str, str], list[FeatureSource]] = {}
    for source in sources:
        order.setdefault((source.backbone, str(source.weights), source.stream), []).append(source)
    groups = []
    for (backbone, weights, stream), members in order.items():
        spec = get_backbone_spec(backbone)
        want = 2 if stream == "flow" else 3
        if spec.in_channels != want:
            raise FeatureExtractorError(
                f"backbone {backbone!r} takes {spec.in_channels} input channels but the "
                f"{stream!r} stream gives {want}"
                + (" (use i3d_flow for flow)" if stream == "flow" else "")
            )
        layers = tuple(dict.fromkeys(m.layer for m in members if m.layer))
        outputs = tuple(dict.fromkeys((source_key(m), m.layer or "pooled") for m in members))
        groups.append(_Group(backbone, weights, stream, spec, layers, outputs))
    return groups


class Preprocessor:
    """uint8 frames / flow -> each network group's float input. Light and picklable, so the
    extraction pipeline runs it in DataLoader workers next to the decoding."""

    def __init__(
        self, sources: Sequence[FeatureSource], transform: TransformConfig | None = None
    ) -> None:
        self.transform = transform or TransformConfig()
        self.groups = _group_sources(sources)
        self._transforms: dict[tuple, ClipTransform] = {}
        for group in self.groups:
            if group.stream == "rgb" and group.prep_key not in self._transforms:
                spec = group.spec
                self._transforms[group.prep_key] = ClipTransform(
                    self.transform, spec.input_size, spec.mean, spec.std, train=False
                )

    @property
    def needs_rgb(self) -> bool:
        return any(g.stream == "rgb" for g in self.groups)

    @property
    def needs_flow(self) -> bool:
        return any(g.stream == "flow" for g in self.groups)

    def __call__(
        self, frames: np.ndarray | None, flow: np.ndarray | None = None
    ) -> dict[tuple, torch.Tensor]:
        """``{prep key: float tensor (T, C, S, S) or (T, L, C, S, S)}`` for every group."""
        out: dict[tuple, torch.Tensor] = {}
        for group in self.groups:
            if group.prep_key in out:
                continue
            data = frames if group.stream == "rgb" else flow
            channels = 3 if group.stream == "rgb" else 2
            if data is None:
                raise FeatureExtractorError(
                    f"source {group.backbone!r} reads the {group.stream!r} stream: pass "
                    + ("frames" if group.stream == "rgb" else "flow=")
                )
            data = np.asarray(data)
            segment = group.spec.kind == "segment"
            if data.ndim != (6 if segment else 5) - 1 or data.shape[-1] != channels:
                shape = "(T, L, H, W, C)" if segment else "(T, H, W, C)"
                raise FeatureExtractorError(
                    f"backbone {group.backbone!r} ({group.spec.kind}) needs {group.stream} "
                    f"input shaped {shape} with C={channels}, got {data.shape}"
                )
            lead = data.shape[:-3]
            flat = data.reshape(-1, *data.shape[-3:])
            if group.stream == "rgb":
                tensor = self._transforms[group.prep_key](flat)
            else:
                size = self.transform.crop_size or group.spec.input_size
                # flow_to_tensor gives displacement / bound in [-1, 1], the I3D flow input
                tensor = flow_to_tensor(flat, size, resize=self.transform.resize)
            out[group.prep_key] = tensor.reshape(*lead, *tensor.shape[1:])
        return out


class FeatureExtractor:
    """Frozen backbones of ``sources`` sharing one decoded clip.

    ``extractor(frames, flow=None)`` -> ``{source_key(s): float32 (T, D_s)}``. ``frames`` is
    ``uint8 (T, H, W, 3)`` (``(T, L, H, W, 3)`` for segment backbones); ``flow`` the stored
    ``uint8`` flow planes ``(T, H, W, 2)`` / ``(T, L, H, W, 2)`` for ``stream='flow'``
    sources. ``chunk_size`` frames (or ``chunk_size // L`` segments) go through a network at
    once. With ``weights='none'`` every network is initialised from ``seed``, so random
    features are the same in every process and run.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        transform: TransformConfig | None = None,
        *,
        device: str | torch.device | None = None,
        precision: Precision = "auto",
        compile: bool = False,
        chunk_size: int = 32,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise FeatureExtractorError("a FeatureExtractor needs at least one source")
        if chunk_size < 1:
            raise FeatureExtractorError(f"chunk_size must be >= 1, got {chunk_size}")
        self.sources = list(sources)
        self.keys = [source_key(s) for s in self.sources]
        if len(set(self.keys)) != len(self.keys):
            raise FeatureExtractorError(f"duplicate feature sources: {self.keys}")
        self.preprocessor = Preprocessor(self.sources, transform)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = resolve_precision(precision, self.device)
        self.fast = self.precision != "fp32"
        self.chunk_size = chunk_size
        self.compiled = compile
        self.networks: list[torch.nn.Module] = []
        for group in self.preprocessor.groups:
            # create_backbone does not seed its random init; a fixed seed keeps 'none' weights
            # (and anything the builder leaves random) identical across processes and runs
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = create_backbone(group.backbone, group.weights, group.layers or None)
            net = net.to(self.device).eval()
            if self.fast or compile:
                fmt = torch.channels_last if group.spec.kind == "frame" else torch.channels_last_3d
                net = net.to(memory_format=fmt)
            self.networks.append(torch.compile(net) if compile else net)

    @property
    def groups(self) -> list[_Group]:
        return self.preprocessor.groups

    @property
    def dims(self) -> dict[str, int]:
        """Feature size of every source."""
        out = {}
        for group in self.groups:
            for key, name in group.sources:
                out[key] = group.spec.feature_dim if name == "pooled" else group.spec.layers[name]
        return {key: out[key] for key in self.keys}

    def describe(self) -> dict[str, object]:
        """Settings that change how (not what) features are computed, for logs and reports."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.fast or self.compiled,
            "compile": self.compiled,
            "chunk_size": self.chunk_size,
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _chunks(self, x: torch.Tensor, segment: bool) -> Iterator[torch.Tensor]:
        step = max(1, self.chunk_size // x.shape[1]) if segment else self.chunk_size
        for start in range(0, x.shape[0], step):
            yield x[start : start + step]

    @torch.inference_mode()
    def run(self, inputs: Mapping[tuple, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Features from :class:`Preprocessor` output: ``{source key: float32 (T, D)}`` on CPU."""
        out: dict[str, torch.Tensor] = {}
        for group, net in zip(self.groups, self.networks, strict=True):
            x = inputs[group.prep_key]
            segment = group.spec.kind == "segment"
            if segment:  # (T, L, C, S, S) -> (T, C, L, S, S): one clip per segment
                x = x.permute(0, 2, 1, 3, 4)
            fmt = torch.channels_last_3d if segment else torch.channels_last
            parts: dict[str, list[torch.Tensor]] = {name: [] for _, name in group.sources}
            for chunk in self._chunks(x, segment):
                chunk = chunk.to(self.device, non_blocking=True)
                if self.fast or self.compiled:
                    chunk = chunk.contiguous(memory_format=fmt)
                with self._autocast():
                    result = net(chunk)
                if not isinstance(result, dict):
                    result = {"pooled": result}
                for name in parts:
                    parts[name].append(result[name].float().cpu())
            for key, name in group.sources:
                out[key] = torch.cat(parts[name]) if parts[name] else torch.zeros(0)
        return {key: out[key] for key in self.keys}

    def __call__(
        self, frames: np.ndarray | None, flow: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        return self.run(self.preprocessor(frames, flow))
