"""Sources -> network runs, and uint8 frames / flow -> each run's float input.

Sources that share a network (backbone + weights + stream + grid, e.g. two layers of
ResNet50) form one :class:`SourceGroup`, run once. Each group's input is prepared from its
weights entry's preprocessing (input size, mean/std), so Inception-ResNet-V2 sees 299 px and
GoogLeNet 224 px crops of the same frames. :class:`Preprocessor` is light and picklable: the
extraction pipeline runs it in DataLoader workers next to the decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harkit.backbones import BackboneSpec, Preprocessing, get_backbone_spec, weights_tag
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.features.errors import FeatureExtractorError
from harkit.flow.dataset import flow_to_tensor
from harkit.models.recipe import FeatureSource

__all__ = ["Preprocessor", "SourceGroup", "group_sources", "source_key"]


def source_key(source: FeatureSource) -> str:
    """Stable name of a source: ``'<stream>:<backbone>:<weights tag>:<layer or pooled>'``,
    then ``'@<g>x<g>'`` for grid features."""
    grid = f"@{source.grid}x{source.grid}" if source.grid > 1 else ""
    return (
        f"{source.stream}:{source.backbone}:{weights_tag(source.weights)}:"
        + (source.layer or "pooled")
        + grid
    )


@dataclass(frozen=True)
class SourceGroup:
    """One network run: the sources it feeds and how its input is prepared."""

    backbone: str
    weights: str
    stream: str
    spec: BackboneSpec
    layers: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]  # (source key, output name: 'pooled' or a layer)
    grid: int = 1
    preprocessing: Preprocessing | None = None
    """The input of these weights (``spec.preprocessing_for(weights)``)."""

    def __post_init__(self) -> None:
        if self.preprocessing is None:
            object.__setattr__(self, "preprocessing", self.spec.preprocessing_for(self.weights))

    def dim(self, output: str) -> int:
        """Feature size of one output (``'pooled'`` or a layer)."""
        if output == "pooled":
            return self.spec.feature_dim
        return self.spec.layers[output] * self.grid * self.grid

    @property
    def output_names(self) -> list[str]:
        """The network's outputs these sources read (``'pooled'`` or layers), in order."""
        return list(dict.fromkeys(name for _, name in self.sources))

    @property
    def prep_key(self) -> tuple:
        # groups with equal preprocessing share one preprocessed tensor
        return (self.stream, self.preprocessing)


def group_sources(sources: Sequence[FeatureSource]) -> list[SourceGroup]:
    # one network run per backbone, weights, stream and grid (a grid pools every layer)
    order: dict[tuple[str, str, str, int], list[FeatureSource]] = {}
    for s in sources:
        order.setdefault((s.backbone, str(s.weights), s.stream, s.grid), []).append(s)
    groups = []
    for (backbone, weights, stream, grid), members in order.items():
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
        unknown = [layer for layer in layers if layer not in spec.layers]
        if unknown:
            raise FeatureExtractorError(
                f"backbone {backbone!r} has no layer {unknown[0]!r}; available: "
                f"{', '.join(spec.layers) or '(none)'}"
            )
        prep = spec.preprocessing_for(weights)
        groups.append(SourceGroup(backbone, weights, stream, spec, layers, outputs, grid, prep))
    return groups


@dataclass(frozen=True)
class _Input:
    """What a worker needs to prepare one group's input: no network, no builder."""

    prep_key: tuple
    stream: str
    backbone: str
    kind: str
    preprocessing: Preprocessing | None


class Preprocessor:
    """uint8 frames / flow -> each network group's float input. Light and picklable, so the
    extraction pipeline runs it in DataLoader workers next to the decoding, whatever the
    start method: a pickled one leaves ``groups`` (their backbone builders) behind, so a
    spawn or forkserver worker (Python 3.14's default on Linux) receives data only."""

    def __init__(
        self, sources: Sequence[FeatureSource], transform: TransformConfig | None = None
    ) -> None:
        self.transform = transform or TransformConfig()
        self.groups = group_sources(sources)
        self._inputs = tuple(
            _Input(g.prep_key, g.stream, g.backbone, g.spec.kind, g.preprocessing)
            for g in self.groups
        )
        self._transforms: dict[tuple, ClipTransform] = {}
        for group in self.groups:
            if not self.transform.square and group.spec.kind != "frame":
                raise FeatureExtractorError(
                    f"crop_size {list(self.transform.crop_size or ())} is not square: only "
                    f"frame (2D) backbones take it, not {group.backbone} ({group.spec.kind})"
                )
            if group.stream == "rgb" and group.prep_key not in self._transforms:
                assert group.preprocessing is not None
                self._transforms[group.prep_key] = ClipTransform.from_preprocessing(
                    self.transform, group.preprocessing, train=False
                )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["groups"]  # the parent's: specs hold builders, often closures
        return state

    def rgb_transform(self, prep_key: tuple) -> ClipTransform | None:
        """The eval transform of the RGB groups with this ``prep_key`` (``None``: no such)."""
        return self._transforms.get(prep_key)

    @property
    def needs_rgb(self) -> bool:
        return any(i.stream == "rgb" for i in self._inputs)

    @property
    def needs_flow(self) -> bool:
        return any(i.stream == "flow" for i in self._inputs)

    def __call__(
        self, frames: np.ndarray | None, flow: np.ndarray | None = None
    ) -> dict[tuple, torch.Tensor]:
        """``{prep key: float tensor (T, C, S, S) or (T, L, C, S, S)}`` for every group."""
        out: dict[tuple, torch.Tensor] = {}
        for group in self._inputs:
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
            segment = group.kind == "segment"
            if data.ndim != (6 if segment else 5) - 1 or data.shape[-1] != channels:
                shape = "(T, L, H, W, C)" if segment else "(T, H, W, C)"
                raise FeatureExtractorError(
                    f"backbone {group.backbone!r} ({group.kind}) needs {group.stream} "
                    f"input shaped {shape} with C={channels}, got {data.shape}"
                )
            lead = data.shape[:-3]
            flat = data.reshape(-1, *data.shape[-3:])
            if group.stream == "rgb":
                tensor = self._transforms[group.prep_key](flat)
            else:
                prep = group.preprocessing
                assert prep is not None
                size = self.transform.crop_size or prep.input_size
                resize = self.transform.resize or (
                    prep.resize_size if self.transform.crop_size is None else None
                )
                # flow_to_tensor gives displacement / bound in [-1, 1], the I3D flow input
                tensor = flow_to_tensor(flat, size, resize=resize)
            out[group.prep_key] = tensor.reshape(*lead, *tensor.shape[1:])
        return out
