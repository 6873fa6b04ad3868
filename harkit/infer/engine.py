"""Fast per-frame encoders for streams: one decoded frame -> the head's input row, at batch 1.

A stream feeds the CNN one frame at a time, where the batch-oriented :class:`Encoder` path
(torchvision transforms on a wrapped video tensor, a PyTorch network under autocast, a
dynamic-batch ORT graph) pays its per-call overheads on every frame. :class:`StreamEngine`
replaces it for streamable frame (2D) encoders:

* **preprocessing** (:class:`FramePrep`): the same resize (bilinear, antialiased, shorter
  side), centre crop and normalisation as the encoder's :class:`ClipTransform`, called as
  plain tensor ops on the ``uint8`` frame and written into one preallocated input buffer;
* **CNN**: each branch exported once at batch 1 (static shapes, in harkit's graph cache,
  :mod:`harkit.onnx`, keyed by a hash of the weights) and run by onnxruntime with
  torch's thread count (``'onnx'``), or its int8 copy (``'int8'``,
  :mod:`harkit.infer.quantize`), or the encoder's own PyTorch path (``'torch'``).

``'auto'`` on a CPU for fast encoders is measured, not a fixed rule (``'torch'`` stays for
the fp32 reference, ``fast=False``, and GPUs): the candidates (ORT fp32 and eager PyTorch in
the encoder's precision, bf16 where :mod:`harkit.precision` runs the encoder in bf16;
compiled PyTorch too with :class:`ProbeSettings` ``compile=True``, off by default since a
stream would wait for the compile on every start) are run at batch 1 on probe frames, each
held against the fp32 encoder, and the fastest is cached per CPU, network and input shape
with the extraction's probe (:mod:`harkit.engine_choice`). ORT fp32 stays unless another is
more than :data:`~harkit.engine_choice.PREFER_MARGIN` faster: at batch 1 on the 2-core
AVX-512 (native bf16) CPU this was written on, ORT fp32 ran MobileNetV3-L 4x faster than
eager PyTorch in fp32 or bf16 (``benchmarks/infer.py``), and it is exact to fp32 (~1e-6).
Eager PyTorch in the encoder's own precision is the encoder's own path (``None``). int8 is
never automatic (see :mod:`harkit.infer.quantize`).

Every engine checks itself against the fp32 PyTorch branch on probe frames when it is built
(:attr:`StreamEngine.check`), and a float engine whose error exceeds :data:`FLOAT_TOLERANCE`
is refused (the stream falls back to the encoder), so a bad export cannot pass silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from harkit.data.transforms import ClipTransform
from harkit.engine_choice import (
    Candidate,
    ProbeSettings,
    Trial,
    choice_key,
    measure,
    pick,
)
from harkit.infer.errors import InferenceError
from harkit.infer.pipeline import Branch, Encoder, SplitModel
from harkit.infer.quantize import QuantMode, compare_outputs, quantize_onnx
from harkit.io import atomic_output
from harkit.onnx import (
    GraphSpec,
    cached_export,
    cached_session,
    module_digest,
    onnx_session,
    onnxruntime_available,
)
from harkit.precision import FEATURE_TOLERANCE

__all__ = [
    "FLOAT_TOLERANCE",
    "FramePrep",
    "StreamEngine",
    "StreamEngineName",
    "build_stream_engine",
    "stream_engine",
]

log = logging.getLogger(__name__)

StreamEngineName = Literal["auto", "torch", "onnx", "int8"]

FLOAT_TOLERANCE = 1e-4
"""Largest accepted feature error of a float (non-int8) engine, relative to the largest
fp32 feature magnitude; ORT fp32 measures ~1e-6."""


class FramePrep:
    """``uint8 (H, W, 3)`` -> ``float32 (1, 3, h, w)``: a :class:`ClipTransform` eval
    pipeline (Resize -> CenterCrop -> ToDtype(scale) -> Normalize) as plain tensor ops.

    The output is one buffer reused for every frame (``out``); copy it to keep it.
    """

    def __init__(
        self,
        resize: int,
        crop: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        antialias: bool = True,
        interpolation: str = "bilinear",
    ) -> None:
        self.resize, self.crop, self.antialias = resize, crop, antialias
        self.interpolation = interpolation  # the backbone weights entry's
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.array = np.empty((1, 3, *crop), np.float32)
        self.out = torch.from_numpy(self.array)  # shares memory: ORT reads it without a copy

    @classmethod
    def from_transform(cls, transform: ClipTransform) -> FramePrep | None:
        """The fast twin of an eval ``transform``; None when it holds other steps."""
        from torchvision.transforms import InterpolationMode, v2

        steps = list(transform.pipeline.transforms)
        kinds = [type(s) for s in steps]
        if kinds != [v2.Resize, v2.CenterCrop, v2.ToDtype, v2.Normalize]:
            return None
        resize, crop, _, norm = steps
        mode = resize.interpolation  # an InterpolationMode or its string value
        mode = getattr(mode, "value", mode)
        if (
            len(resize.size) != 1
            or resize.max_size is not None
            or mode not in (InterpolationMode.BILINEAR.value, InterpolationMode.BICUBIC.value)
        ):
            return None
        h, w = crop.size
        return cls(resize.size[0], (h, w), norm.mean, norm.std, bool(resize.antialias), mode)

    def __call__(self, frame: np.ndarray) -> Tensor:
        from torchvision.transforms.v2 import functional as F

        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
        # torchvision's own kernels on a plain tensor: same pixels as ClipTransform, without
        # its per-call tv_tensors wrapping and transform dispatch
        x = F.resize(
            x, [self.resize], F.InterpolationMode(self.interpolation), antialias=self.antialias
        )
        x = F.center_crop(x, list(self.crop))
        torch.mul(x, 1.0 / 255.0, out=self.out)  # uint8 -> float into the reused buffer
        return self.out.sub_(self.mean).div_(self.std)


@dataclass
class _Runner:
    """One branch at batch 1: ``(1, C, S, S)`` -> its outputs, float32."""

    branch: Branch
    call: Callable[[Tensor], list[Tensor]]
    kind: str


def _ort_runner(branch: Branch, kind: str, calibration: Tensor | None, quant: QuantMode) -> _Runner:
    module = branch.module.float().eval()
    names = tuple(f"out{i}" for i in range(len(branch.outputs)))
    # a trained run's weights have no name: the graph is known by their hash, and by the
    # outputs (two layers of one network share its weights and repr)
    identity = {"module": module_digest(module), "outputs": list(branch.outputs)}
    graph = GraphSpec(branch.name, identity, (1, *branch.input_shape), ("frames",), names)
    # batch 1: ORT's wake-ups cost more than its spinning workers
    if kind != "int8":
        sess = cached_session(graph, module, spin=True)
    else:
        assert calibration is not None
        path = cached_export(graph, module)
        calib = np.ascontiguousarray(calibration.numpy(), np.float32)
        tag = hashlib.sha256(calib.tobytes()).hexdigest()[:12] if quant == "static" else "dyn"
        qpath = path.with_name(f"{path.stem}-int8-{quant}-{tag}.onnx")
        if not qpath.is_file():
            with atomic_output(qpath, suffix=".onnx") as tmp:
                quantize_onnx(path, tmp, calib, quant)
        sess = onnx_session(qpath, spin=True)
    name = sess.get_inputs()[0].name

    def call(x: Tensor) -> list[Tensor]:
        arrays = sess.run(None, {name: x.numpy()})
        return [torch.from_numpy(a) for a in arrays]

    return _Runner(branch, call, kind)


def _torch_runner(branch: Branch, precision: str, compiled: bool) -> _Runner:
    """One branch's PyTorch module at batch 1, channels-last, eager or ``torch.compile``-d
    (frozen, one shape), under bf16 autocast for ``precision='bf16'``."""
    from harkit.features.extractor import compile_network

    module = branch.module.to(memory_format=torch.channels_last).eval()
    if compiled:
        module = compile_network(module)

    def call(x: Tensor) -> list[Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        with torch.no_grad(), autocast:
            out = module(x)
        return [o.float() for o in out]

    kind = f"{'compiled' if compiled else 'eager'}-{precision}"
    return _Runner(branch, call, kind)


@dataclass
class StreamEngine:
    """A streamable frame encoder's fast per-frame path (see the module docstring).

    ``encode(frames)`` takes ``uint8 (1, H, W, 3)`` and returns ``(1, D)``, like
    :meth:`Encoder.encode` for one frame.
    """

    encoder: Encoder
    kind: str
    preps: dict[Any, FramePrep]
    runners: list[_Runner]
    check: dict[str, float] = field(default_factory=dict)
    """Error against the fp32 PyTorch encoder on the probe frames (:func:`compare_outputs`)."""
    chosen_by: str = "explicit"
    """``'explicit'`` (asked for), ``'probe'`` (measured now) or ``'cache'`` (earlier)."""
    trials: dict[str, Trial] | None = None

    def encode(self, frames: np.ndarray) -> Tensor:
        if frames.shape[0] != 1:
            return self.encoder.encode(frames)
        inputs = {key: prep(frames[0]) for key, prep in self.preps.items()}
        feats: dict[str, Tensor] = {}
        for runner in self.runners:
            outs = runner.call(inputs[runner.branch.prep_key])
            feats.update(zip(runner.branch.outputs, outs, strict=True))
        parts = [feats[key] for key in self.encoder.order]
        # ORT returns fresh arrays per call: nothing here aliases a reused buffer
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def describe(self) -> dict[str, Any]:
        out = {
            "engine": self.kind,
            "threads": torch.get_num_threads(),
            **self.check,
            "chosen_by": self.chosen_by,
        }
        if self.trials:
            out["probe"] = {
                name: {"items_per_s": t.items_per_s, "error": t.error, "refused": t.refused}
                for name, t in self.trials.items()
            }
        return out


def _reference(encoder: Encoder, frames: np.ndarray) -> Tensor:
    """The fp32 PyTorch encoder's output for ``frames`` (one frame per call, as streamed)."""
    rows = []
    for branch_frame in frames:
        inputs = {}
        for branch in encoder.branches:
            transform = encoder.rgb_transform(branch)
            assert transform is not None
            inputs[branch.prep_key] = transform(branch_frame[None])
        feats: dict[str, Tensor] = {}
        with torch.no_grad():
            for branch in encoder.branches:
                outs = branch.module.float()(inputs[branch.prep_key])
                feats.update(zip(branch.outputs, outs, strict=True))
        rows.append(torch.cat([feats[k].float() for k in encoder.order], dim=-1))
    return torch.cat(rows)


def probe_frames(count: int = 4, size: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """Smooth random ``uint8`` frames (low-resolution noise, upsampled) for self-checks."""
    rng = np.random.default_rng(seed)
    low_size = (count, 3, max(1, size[0] // 16), max(1, size[1] // 16))
    low = torch.from_numpy(rng.random(low_size, np.float32))
    high = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    return (high * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _stream_candidates(encoder: Encoder, probe: ProbeSettings) -> list[str]:
    """ORT fp32 and PyTorch in the encoder's precision (the rule of :mod:`harkit.precision`,
    which the head and the batch paths of the same run follow too)."""
    names = []
    if onnxruntime_available():
        names.append("onnx-fp32")
    if probe.compile:
        names.append(f"compiled-{encoder.precision}")
    return [*names, f"eager-{encoder.precision}"]


def _build_runners(
    encoder: Encoder, name: str, calib: Mapping[Any, Tensor] | None, quant: QuantMode
) -> list[_Runner]:
    kind, _, precision = name.partition("-")
    if kind in ("onnx", "int8"):
        ort_kind = "int8" if kind == "int8" else "onnx"
        return [
            _ort_runner(b, ort_kind, calib[b.prep_key] if calib else None, quant)
            for b in encoder.branches
        ]
    return [_torch_runner(b, precision, kind == "compiled") for b in encoder.branches]


def _encode_all(
    encoder: Encoder, runners: list[_Runner], inputs: list[dict[Any, Tensor]]
) -> dict[str, Tensor]:
    """The probe frames' rows through ``runners``, one frame per call (as streamed)."""
    rows = []
    for frame_inputs in inputs:
        feats: dict[str, Tensor] = {}
        for runner in runners:
            outs = runner.call(frame_inputs[runner.branch.prep_key])
            feats.update(zip(runner.branch.outputs, outs, strict=True))
        rows.append(torch.cat([feats[key].float() for key in encoder.order], dim=-1))
    return {"features": torch.cat(rows)}


def _stream_key(encoder: Encoder) -> dict[str, Any]:
    network = {
        "branches": [[b.name, list(b.outputs), list(b.input_shape)] for b in encoder.branches]
    }
    return choice_key("stream", network, (1, *encoder.branches[0].input_shape))


def _choose_stream_engine(
    encoder: Encoder,
    preps: dict[Any, FramePrep],
    probes: np.ndarray,
    reference: Tensor,
    probe: ProbeSettings,
) -> tuple[str | None, str, dict[str, Trial] | None, dict[str, list[_Runner]]]:
    """``(candidate or None, chosen_by, trials, runners built on the way)``: the cached
    choice where every candidate measured fine before, else a probe on ``probes``."""
    allowed = _stream_candidates(encoder, probe)
    key = _stream_key(encoder)
    cached = probe.cache.load(key)
    # a refusal is measured again (an export failure may be gone); probing costs a second
    if cached is not None and all(n in cached and cached[n].ok for n in allowed):
        return pick(cached, allowed, "onnx-fp32"), "cache", cached, {}
    if cached is not None:
        probe.cache.forget(key)
    if not probe.measure:
        return "onnx-fp32", "rule", None, {}
    inputs = [{k: prep(f).clone() for k, prep in preps.items()} for f in probes]
    built: dict[str, list[_Runner]] = {}

    def candidate(name: str) -> Candidate:
        def build() -> Callable[[], Mapping[str, Tensor]]:
            runners = built[name] = _build_runners(encoder, name, None, "static")
            return lambda: _encode_all(encoder, runners, inputs)

        return Candidate(name, name.partition("-")[2], build)

    trials, _ = measure(
        [candidate(n) for n in allowed],
        {"features": reference},
        len(inputs),
        rounds=probe.rounds,
        timing=probe.timing,
        tolerance=FEATURE_TOLERANCE,
    )
    chosen = pick(trials, allowed, "onnx-fp32")
    probe.cache.save(key, trials, chosen)
    log.info(
        "stream engine: %s measured (%s)",
        chosen,
        ", ".join(
            f"{n} {t.items_per_s:.0f}/s" if t.ok and t.items_per_s else f"{n} refused"
            for n, t in trials.items()
        ),
    )
    return chosen, "probe", trials, built


def build_stream_engine(
    model: SplitModel,
    engine: StreamEngineName = "auto",
    *,
    calibration: np.ndarray | None = None,
    quant: QuantMode = "static",
    probe: ProbeSettings | None = None,
) -> StreamEngine | None:
    """The fast per-frame path of ``model``'s encoder, or None where the encoder's own path
    runs (``'torch'``, ``'auto'`` on the fp32 reference or a GPU, segment/clip/flow encoders,
    or where ``'auto'`` measured the encoder's own eager path fastest).

    ``calibration``: ``uint8 (N, H, W, 3)`` frames like the stream's, which int8 fits its
    activation ranges to (default: :func:`probe_frames`, synthetic; pass real ones). ``probe``:
    how ``'auto'`` measures (:class:`ProbeSettings`). Raises :class:`InferenceError` when an
    explicitly asked engine cannot serve this encoder.
    """
    if engine not in ("auto", "torch", "onnx", "int8"):
        raise InferenceError(f"unknown stream engine {engine!r}; expected auto, torch, onnx, int8")
    encoder = model.encoder
    explicit = engine in ("onnx", "int8")
    if engine == "torch" or (
        engine == "auto" and (not encoder.fast or encoder.device.type != "cpu")
    ):
        return None

    def refuse(why: str) -> None:
        if explicit:
            raise InferenceError(f"stream engine '{engine}': {why}")
        log.info("stream engine: %s; the encoder's own path runs", why)

    if encoder.device.type != "cpu":
        return refuse(f"runs on the CPU only, not {encoder.device}")
    if encoder.kind != "frame" or encoder.needs_flow:
        return refuse("frame (2D) RGB encoders only")
    if any(b.runner is not None for b in encoder.branches):
        return refuse("the encoder already runs exported graphs")
    preps: dict[Any, FramePrep] = {}
    for branch in encoder.branches:
        transform = encoder.rgb_transform(branch)
        prep = FramePrep.from_transform(transform) if transform is not None else None
        if prep is None:
            return refuse(f"branch {branch.name}: preprocessing other than resize/crop/normalise")
        preps.setdefault(branch.prep_key, prep)
    kind = "int8" if engine == "int8" else "onnx"
    probes = probe_frames()
    reference = _reference(encoder, probes)
    chosen_by, trials, built = "explicit", None, {}
    name = "int8" if kind == "int8" else "onnx-fp32"
    if engine == "auto":
        chosen, chosen_by, trials, built = _choose_stream_engine(
            encoder, preps, probes, reference, probe or ProbeSettings()
        )
        if chosen is None or chosen == f"eager-{encoder.precision}":
            log.info("stream engine: the encoder's own path (%s) measured fastest", chosen)
            return None
        name = chosen
        kind = "onnx" if chosen == "onnx-fp32" else chosen
    calib = None
    if kind == "int8":
        frames = calibration if calibration is not None else probes
        calib = {
            key: torch.stack([prep(f)[0].clone() for f in frames]) for key, prep in preps.items()
        }
    try:
        runners = built.get(name) or _build_runners(encoder, name, calib, quant)
    except Exception as exc:  # a network the exporter or onnxruntime cannot take
        if explicit:
            raise InferenceError(f"stream engine '{engine}': export failed ({exc})") from exc
        log.warning("stream engine: export failed (%s); the encoder's own path runs", exc)
        return None
    result = StreamEngine(encoder, kind, preps, runners, chosen_by=chosen_by, trials=trials)
    fast = torch.cat([result.encode(f[None]) for f in probes])
    result.check = compare_outputs(reference.numpy(), fast.numpy())
    log.debug("stream engine %s: error vs fp32 %s", kind, result.check)
    limit = FEATURE_TOLERANCE["bf16"] if name.endswith("bf16") else FLOAT_TOLERANCE
    if kind != "int8" and result.check["max_rel_error"] > limit:
        log.warning("stream engine %s is off fp32 by %s: not used", kind, result.check)
        if chosen_by == "cache":  # measured right before, wrong now: measure again next time
            (probe or ProbeSettings()).cache.forget(_stream_key(encoder))
        if explicit:
            raise InferenceError(f"stream engine '{kind}' is off fp32 by {result.check}")
        return None
    return result


def stream_engine(
    model: SplitModel, engine: StreamEngineName = "auto", **kwargs: Any
) -> StreamEngine | None:
    """:func:`build_stream_engine`, built once per model and engine and kept on the model
    (a benchmark or a caller can build and warm it before the stream starts)."""
    cache: dict[str, StreamEngine | None] = model.__dict__.setdefault("_stream_engines", {})
    if engine not in cache:
        cache[engine] = build_stream_engine(model, engine, **kwargs)
    return cache[engine]
