"""A trained model split into its two inference stages: a per-step **encoder** and a **head**.

* ``Encoder.encode(frames)`` maps decoded ``uint8`` frames to the head's input sequence
  ``(T', D)``: one row per frame for 2D backbones, per segment of ``L`` frames for 3D ones
  (``frames`` is then ``(T, L, H, W, 3)``), and per pooled time step for seed 003's 3D CNN
  (a *clip* encoder, which sees the whole clip at once and so cannot run frame by frame).
* ``head(x, lengths)`` maps ``(B, T', D)`` to logits; unidirectional heads also stream with
  ``init_state`` / ``step``.

Features-mode recipes encode with :class:`harkit.features.extractor.FeatureExtractor`, the code
that filled the feature store for training (same preprocessing per backbone, same seeded random
init for ``weights: none``, sources of one network sharing a run); its networks are also the
encoder's :class:`Branch` objects, one per network, which :mod:`harkit.infer.export` writes to
ONNX. Flow-stream sources (seed 001's two-stream I3D) also take the uint8 flow planes of the
sampled pairs, which :mod:`harkit.infer.flow` computes from the frames as ``harkit flow`` did
for training (``SplitModel.flow`` holds the settings); the streams are cut to the shorter one
(flow has one pair fewer than frames), as the training dataset does. End-to-end recipes have one branch: the CRNN's CNN + FC embedding, seed 003's 2D CNN, or
its 3D CNN trunk, after the network's clip transform. The ONNX engine swaps each branch's
module for an onnxruntime session and keeps the (PyTorch) preprocessing.

Features-mode encoders take the extractor's ``engine``: on a CPU the default ``'auto'`` runs
frame backbones with onnxruntime (graphs exported once to the harkit cache; 1.6-5x faster than
eager PyTorch on a 2-core AVX2 CPU), while the head keeps stepping in PyTorch. This is separate
from ``Recognizer(engine='onnx')``, which runs a run's own exported files (``harkit export``).

Fast path: the CNN runs channels-last under ``no_grad``; reduced-precision autocast only where
the hardware has it natively (:func:`harkit.precision.resolve_precision`, which
``HARKIT_PRECISION`` can force either way).
On the AVX2 CPU this was written on, bf16 autocast made ResNet18 4x and MobileNetV3 40x
*slower* than fp32, so it is not applied there. The head always runs in fp32 under
``no_grad`` (inference_mode + bf16 autocast made a GRU 2x slower).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from harkit.backbones import get_backbone_spec
from harkit.data.transforms import ClipTransform
from harkit.features.engines import Engine, NamedOutputs
from harkit.flow.extract import FlowConfig
from harkit.infer.errors import InferenceError
from harkit.infer.flow import FlowSettings, needs_flow, resolve_flow
from harkit.models.builder import CRNN, ClipC3D, pixel_input
from harkit.models.networks import Small2DCNNGRU
from harkit.models.recipe import Recipe
from harkit.precision import resolve_precision
from harkit.train.run_info import RunInfo

__all__ = [
    "Branch",
    "BranchKind",
    "Encoder",
    "SplitModel",
    "head_streamable",
    "split_model",
]

BranchKind = Literal["frame", "segment", "clip"]


def head_streamable(head: nn.Module) -> bool:
    """Whether ``head`` can be fed one step at a time (unidirectional recurrent heads)."""
    flag = getattr(head, "streamable", None)
    if flag is not None:
        return bool(flag)
    if not hasattr(head, "step"):
        return False
    return not any(getattr(m, "bidirectional", False) for m in head.modules())


@dataclass
class Branch:
    """One network of an encoder: its preprocessed input -> one or more ``(N, D)`` outputs.

    ``kind='frame'``: input ``(N, 3, S, S)``; ``'segment'``: ``(N, C, L, S, S)``; ``'clip'``:
    ``(B, T, 3, S, S)`` -> ``(B, T', D)``. ``module`` returns a tuple, one tensor per name in
    ``outputs`` (several layers of one backbone share a branch).
    """

    name: str
    kind: BranchKind
    prep_key: Any
    module: nn.Module
    outputs: list[str]
    output_dims: list[int]
    input_shape: tuple[int, ...]
    """Shape of one item of the batch (for export examples)."""
    runner: Callable[[Tensor], Sequence[Tensor]] | None = field(default=None, repr=False)
    """Replaces ``module`` at run time (the ONNX engine)."""


class _EncoderEmbed(nn.Module):
    """CRNN frame path: backbone -> FC embedding chain."""

    def __init__(self, crnn: CRNN) -> None:
        super().__init__()
        self.encoder = crnn.encoder
        self.embed = crnn.embed

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.embed(self.encoder(x)),)


class _FrameEncoder(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.net(x),)


class _C3DTrunk(nn.Module):
    """Seed 003's 3D CNN: ``(B, T, 3, S, S)`` -> ``(B, T', F)``."""

    def __init__(self, model: ClipC3D) -> None:
        super().__init__()
        self.network = model.network

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.network.sequence(x.transpose(1, 2)),)


class _C3DHead(nn.Module):
    """Seed 003's head over the trunk's sequence (recurrent, or dense over the flat clip)."""

    def __init__(self, model: ClipC3D) -> None:
        super().__init__()
        self.head = model.network.head
        self.recurrent = model.network.rnn_cells != []

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(x, lengths) if self.recurrent else self.head(x.flatten(1))


PIXELS = "pixels"


class _PixelPreprocess:
    """End-to-end networks: the clip transform of the network's input size / mean / std."""

    def __init__(self, transform: ClipTransform, clip: bool) -> None:
        self.transform = transform
        self.clip = clip

    def __call__(self, frames: np.ndarray) -> dict[Any, Tensor]:
        x = self.transform(np.ascontiguousarray(frames))
        return {PIXELS: x.unsqueeze(0) if self.clip else x}


class Encoder:
    """uint8 frames -> the head's input ``(T', D)``; see the module docstring.

    ``preprocess(frames)`` gives one float tensor per preprocessing (``prep_key``); each
    branch maps its tensor to named outputs, concatenated along ``D`` in ``order`` (the
    recipe's source order). Features-mode recipes run the branches through
    :class:`~harkit.features.extractor.FeatureExtractor` (the code that computed the training
    features); the ONNX engine sets each branch's ``runner``.
    """

    def __init__(
        self,
        branches: list[Branch],
        preprocess: Callable[[np.ndarray], dict[Any, Tensor]],
        order: list[str],
        *,
        extractor: Any = None,
        device: torch.device | None = None,
        fast: bool = True,
    ) -> None:
        self.branches = branches
        self.preprocess = preprocess
        self.order = order
        self.extractor = extractor
        self.device = device or torch.device("cpu")
        self.fast = fast
        self.needs_flow = bool(extractor is not None and extractor.preprocessor.needs_flow)
        """Flow-stream sources: :meth:`encode` takes the flow planes too."""
        # the extractor's rule, so both encoders of a run agree on precision
        self.precision = (
            extractor.precision
            if extractor is not None
            else resolve_precision("auto" if fast else "fp32", self.device)
        )
        for branch in branches:
            branch.module.eval().to(self.device)
            if fast and extractor is None and branch.kind == "frame":
                branch.module.to(memory_format=torch.channels_last)

    def rgb_transform(self, branch: Branch) -> ClipTransform | None:
        """The eval transform of ``branch``'s RGB input (``None`` for flow branches)."""
        if self.extractor is not None:
            return self.extractor.preprocessor.rgb_transform(branch.prep_key)
        return getattr(self.preprocess, "transform", None)

    @property
    def kind(self) -> BranchKind:
        return self.branches[0].kind

    @property
    def per_step(self) -> bool:
        """True when step ``t`` depends on the frames of step ``t`` only (can stream)."""
        return self.kind != "clip"

    @property
    def output_dim(self) -> int:
        return sum(sum(b.output_dims) for b in self.branches)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def run_branch(self, branch: Branch, x: Tensor) -> list[Tensor]:
        """One preprocessed batch through a branch: its outputs, float32 on the CPU."""
        if branch.kind == "segment":  # (N, L, C, S, S) -> (N, C, L, S, S)
            x = x.permute(0, 2, 1, 3, 4)
        if branch.runner is not None:
            return list(branch.runner(x))
        x = x.to(self.device, non_blocking=True)
        if self.fast and branch.kind == "frame":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self._autocast():
            out = branch.module(x)
        return [o.float().cpu() for o in out]

    def encode(self, frames: np.ndarray, flow: np.ndarray | None = None) -> Tensor:
        """uint8 frames (and, for flow-stream sources, the uint8 flow planes of the same steps,
        see :mod:`harkit.infer.flow`) -> ``(T', D)`` float32 head input."""
        if self.needs_flow:
            if flow is None:
                raise InferenceError("this model reads optical flow: pass flow= to encode")
            inputs = self.preprocess(frames, flow)
        else:
            inputs = self.preprocess(frames)
        if self.extractor is not None and all(b.runner is None for b in self.branches):
            feats = self.extractor.run(inputs)
        else:
            feats = {}
            for branch in self.branches:
                outs = self.run_branch(branch, inputs[branch.prep_key])
                feats.update(zip(branch.outputs, outs, strict=True))
        parts = [feats[key] for key in self.order]
        if self.kind == "clip":
            parts = [p[0] for p in parts]
        if len(parts) == 1:
            return parts[0]
        # flow has one pair fewer than frames: cut to the shortest, as FeatureDataset does
        steps = min(len(p) for p in parts)
        return torch.cat([p[:steps] for p in parts], dim=-1)


def _features_encoder(recipe: Recipe, device: torch.device, fast: bool, engine: Engine) -> Encoder:
    from harkit.features.extractor import FeatureExtractor
    from harkit.features.preprocess import source_key

    extractor = FeatureExtractor(
        recipe.input.features,
        recipe.input.transform,
        device=device,
        precision="auto" if fast else "fp32",
        engine=engine if fast else "torch",
    )
    branches = []
    for i, (group, net) in enumerate(zip(extractor.groups, extractor.networks, strict=True)):
        names = [name for _, name in group.sources]
        spec = group.spec
        assert group.preprocessing is not None  # the weights entry's
        size = recipe.input.transform.crop_shape(group.preprocessing.input_size)
        if spec.kind == "segment":
            shape: tuple[int, ...] = (
                spec.in_channels,
                recipe.input.sampling.segment_length,
                *size,
            )
        else:
            shape = (spec.in_channels, *size)
        dims = [group.dim(n) for n in names]
        branches.append(
            Branch(
                name=f"{i}_{group.backbone}",
                kind="segment" if spec.kind == "segment" else "frame",
                prep_key=group.prep_key,
                module=NamedOutputs(net, names),
                outputs=[key for key, _ in group.sources],
                output_dims=dims,
                input_shape=shape,
            )
        )
    order = [source_key(s) for s in recipe.input.features]
    return Encoder(
        branches, extractor.preprocessor, order, extractor=extractor, device=device, fast=fast
    )


def _pixel_encoder(
    recipe: Recipe, model: nn.Module, device: torch.device, fast: bool
) -> tuple[Encoder, nn.Module]:
    transform = ClipTransform.from_preprocessing(recipe.input.transform, pixel_input(recipe))
    crop = transform.output_size
    net = recipe.network
    assert net is not None
    if isinstance(model, CRNN):
        dim = net.embed[-1] if net.embed else get_backbone_spec(net.encoder).feature_dim
        branch = Branch("crnn", "frame", PIXELS, _EncoderEmbed(model), [PIXELS], [dim], (3, *crop))
        head = model.head
    elif isinstance(model, Small2DCNNGRU):
        branch = Branch(
            "small2d",
            "frame",
            PIXELS,
            _FrameEncoder(model.frame_encoder),
            [PIXELS],
            [model.head.encoder.stack.input_dim],
            (3, *crop),
        )
        head = model.head
    elif isinstance(model, ClipC3D):
        branch = Branch(
            "c3d",
            "clip",
            PIXELS,
            _C3DTrunk(model),
            [PIXELS],
            [model.network.sequence_shape[1]],
            (recipe.input.sampling.num_frames, 3, *crop),
        )
        head = _C3DHead(model)
    else:
        raise InferenceError(f"no inference split for {type(model).__name__}")
    prep = _PixelPreprocess(transform, clip=branch.kind == "clip")
    return Encoder([branch], prep, [PIXELS], device=device, fast=fast), head


@dataclass
class SplitModel:
    """A run's model as ``encoder`` + ``head`` (both in eval mode)."""

    recipe: Recipe
    classes: list[str]
    encoder: Encoder
    head: nn.Module
    head_runner: Callable[[Sequence[Tensor], Sequence[int]], Tensor] | None = field(
        default=None, repr=False
    )
    """Replaces the PyTorch head for whole sequences (the ONNX engine): sequences of their
    valid steps -> logits ``(B, C)``."""
    flow: FlowSettings | None = None
    """How the flow of new frames is computed (flow-stream recipes only)."""

    @property
    def streamable(self) -> bool:
        """Frame-by-frame streaming possible: per-step encoder and unidirectional head."""
        return self.encoder.per_step and head_streamable(self.head)

    @property
    def segment_length(self) -> int | None:
        """Frames per step for segment (3D) backbones, else None."""
        sampling = self.recipe.input.sampling
        return sampling.segment_length if self.encoder.kind == "segment" else None

    def head_logits(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Head forward in fp32 under ``no_grad`` (the measured fastest CPU path)."""
        with torch.no_grad():
            return self.head(x.float(), lengths)


def split_model(
    recipe: Recipe,
    classes: Sequence[str],
    model: nn.Module,
    device: str | torch.device = "cpu",
    fast: bool = True,
    engine: Engine = "auto",
    *,
    flow: FlowConfig | dict[str, Any] | str | Path | None = None,
    flow_method: str | None = None,
    run_info: RunInfo | None = None,
) -> SplitModel:
    """Split ``build_model(recipe)``'s trained ``model`` into encoder branches + head.

    ``engine`` runs features-mode frame backbones (see
    :class:`~harkit.features.extractor.FeatureExtractor`); ``fast=False`` is the PyTorch fp32
    reference whatever ``engine`` says. Flow-stream recipes: ``flow`` (a flow config or
    ``flow_config.json``), ``flow_method`` and ``run_info`` (``run.json``) choose the flow
    settings (:func:`harkit.infer.flow.resolve_flow`).
    """
    device = torch.device(device)
    model = model.eval()
    if recipe.mode == "features":
        encoder = _features_encoder(recipe, device, fast, engine)
        if len({b.kind for b in encoder.branches}) > 1:
            raise InferenceError("a recipe cannot mix frame (2D) and segment (3D) backbones")
        head = model
    else:
        encoder, head = _pixel_encoder(recipe, model, device, fast)
    settings = None
    if needs_flow(recipe):
        settings = resolve_flow(recipe, flow, flow_method, run_info)
    elif flow is not None or flow_method is not None:
        raise InferenceError(f"recipe '{recipe.name}' reads no optical flow; drop the flow options")
    return SplitModel(recipe, list(classes), encoder, head.eval().to(device), flow=settings)
