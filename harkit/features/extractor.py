"""`FeatureExtractor`: one decoded clip -> per-time-step features of several frozen backbones.

Sources that share a network run it once, each network on its own preprocessing of the frames
(:mod:`harkit.features.preprocess`). Frame backbones run over the T frames in chunks; segment
backbones give one feature per segment.

The fast path is ``channels_last`` memory format plus autocast (``precision='auto'``: bf16 on
CPUs with AMX, fp16 on CUDA; see :mod:`harkit.precision`) and optionally
``torch.compile`` (frozen, one batch shape: the last chunk is padded; each compiled network's
first batch is checked against eager fp32 and a wrong graph is replaced, see
:func:`compile_network`); ``precision='fp32'`` is the reference. The extractor knows nothing
about the feature store, so inference uses it too.

``engine='onnx'`` runs frame (2D) networks with onnxruntime instead, each exported once to
harkit's graph cache (:mod:`harkit.onnx`); ``'auto'`` picks it wherever the precision is fp32
(:func:`resolve_engine`, :mod:`harkit.features.engines`). That fixed rule is what ``'auto'``
means for a single extractor.

Whole-job extraction (:func:`harkit.features.extract_features`) passes :class:`ProbeSettings`
instead: each network's engine (onnxruntime fp32, compiled or eager PyTorch, each in fp32 and,
where the CPU has native bf16 and the network's bf16 features are in tolerance, bf16) is
chosen on this CPU by measurement on its first full batch, every candidate held against eager
fp32 first, and the measurements are cached per CPU, network and input shape
(:mod:`harkit.engine_choice`), since no fixed rule was right on every CPU: onnxruntime fp32
reached 93-102% of compiled PyTorch on an AVX512-BF16 CPU but 60% on an AVX2 one, and on a CPU
with AMX compiled bf16 ran GoogLeNet 2.5-3.3x faster than either fp32 engine.
:attr:`FeatureExtractor.plans` says how each network ran and why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harkit.backbones import create_backbone
from harkit.data.transforms import TransformConfig
from harkit.engine_choice import (
    Candidate,
    ProbeSettings,
    choice_key,
    measure,
    pick,
    relative_error,
)
from harkit.features.engines import (
    Engine,
    EnginePlan,
    NamedOutputs,
    compile_network,
    graph_spec,
    resolve_engine,
    sources_precision,
)
from harkit.features.errors import FeatureExtractorError
from harkit.features.preprocess import Preprocessor, SourceGroup, source_key
from harkit.models.recipe import FeatureSource
from harkit.onnx import cached_session, onnxruntime_available
from harkit.precision import FEATURE_TOLERANCE, Precision, probe_precisions, resolve_precision

__all__ = ["COMPILED_CHUNK", "FeatureExtractor"]

log = logging.getLogger(__name__)


def _as_dict(out: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return out if isinstance(out, dict) else {"pooled": out}


ONNX_CHUNK = 8
"""Frames per onnxruntime call (dynamic batch, CPU): EfficientNet-Lite0 extraction ran 1.1x
faster at 8 than at 32, and compiled PyTorch 1.4x (activations of a small batch stay in
cache; ``benchmarks/extract.py --variants batch8``, 2-core AVX-512 CPU)."""

COMPILED_CHUNK = 8
"""Frames per call of a compiled frame network chosen by a probe (its graph's one batch
shape): on a 2-core AVX-512 CPU compiled fp32 EfficientNet-Lite0 ran 1.3-1.7x faster at 8 than
at 32 and GoogLeNet (fp32, bf16) within 15% either way (``benchmarks/extract.py``)."""

CHECK_ITEMS = 4
"""Items of a compiled network's first batch held against eager fp32 (its whole batch cost
ResNet152 about 5% of a 700-frame job on 2 cores)."""


class FeatureExtractor:
    """Frozen backbones of ``sources`` sharing one decoded clip.

    ``extractor(frames, flow=None)`` -> ``{source_key(s): float32 (T, D_s)}``. ``frames`` is
    ``uint8 (T, H, W, 3)`` (``(T, L, H, W, 3)`` for segment backbones); ``flow`` the stored
    ``uint8`` flow planes ``(T, H, W, 2)`` / ``(T, L, H, W, 2)`` for ``stream='flow'``
    sources. ``chunk_size`` frames (or ``chunk_size // L`` segments) go through a network at
    once. ``weights='none'`` networks come from the backbone factory's fixed-seed init, so
    random features are the same in every process and run. ``engine`` (see :func:`resolve_engine`)
    picks PyTorch or onnxruntime for frame networks; the ONNX graphs are exported (or loaded
    from the cache) on first use. ``probe`` (with ``engine='auto'`` on a CPU, without
    ``compile=True``) chooses each network's engine by measurement instead (see
    :class:`ProbeSettings`); ``plans`` says how each network ran.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        transform: TransformConfig | None = None,
        *,
        device: str | torch.device | None = None,
        precision: Precision = "auto",
        engine: Engine = "auto",
        compile: bool = False,
        chunk_size: int = 32,
        probe: ProbeSettings | None = None,
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
        # ORT graphs are fp32: an explicit engine='onnx' makes precision='auto' mean fp32
        auto_fp32 = engine == "onnx" and precision == "auto"
        self.precision = (
            "fp32" if auto_fp32 else sources_precision(self.sources, precision, self.device)
        )
        if not auto_fp32 and self.precision != resolve_precision(precision, self.device):
            log.debug(
                "%s: reduced-precision features are out of tolerance, running fp32",
                ", ".join(sorted({s.backbone for s in self.sources})),
            )
        self.fast = self.precision != "fp32"
        # torch.compile is a PyTorch-engine request: auto leaves it on PyTorch
        self.engine = (
            "torch"
            if compile and engine == "auto"
            else resolve_engine(engine, self.device, self.precision)
        )
        if self.engine == "onnx" and (self.fast or compile):
            raise FeatureExtractorError(
                f"engine='onnx' runs fp32 graphs: it does not combine with "
                f"{'compile=True' if compile else f'precision={self.precision!r}'}"
            )
        self.chunk_size = chunk_size
        self.compiled = compile
        # the measured choice: 'auto' on a CPU only (compile=True asks for PyTorch)
        self.probe = (
            probe
            if probe is not None and engine == "auto" and not compile and self.device.type == "cpu"
            else None
        )
        self._requested_precision = precision
        self._channels_last = self.fast or compile or self.probe is not None
        # compiled networks built by a probe, by (group index, candidate name)
        self._probe_nets: dict[tuple[int, str], torch.nn.Module] = {}
        # (group index, input shape) -> onnxruntime session, built on first use
        self._sessions: dict[tuple[int, tuple[int, ...]], Any] = {}
        self.networks: list[torch.nn.Module] = []
        self._eager: list[torch.nn.Module] = []  # the uncompiled networks
        # compiled groups whose first batch is still to be checked against eager fp32
        self._unchecked: set[int] = set(range(len(self.preprocessor.groups))) if compile else set()
        self._frozen: set[int] = set(self._unchecked)  # compiled with freezing
        #: ``{backbone: max relative error}`` of each compiled group's first batch vs fp32
        self.compile_check: dict[str, float] = {}
        for group in self.preprocessor.groups:
            net = create_backbone(
                group.backbone, group.weights, group.layers or None, grid=group.grid
            )
            net = net.to(self.device).eval()
            if self._channels_last:
                fmt = torch.channels_last if group.spec.kind == "frame" else torch.channels_last_3d
                net = net.to(memory_format=fmt)
            self._eager.append(net)
            self.networks.append(compile_network(net) if compile else net)
        by = "rule" if engine == "auto" else "explicit"
        #: How each group (network) runs; ``None`` until a probe decides on its first batch.
        self.plans: list[EnginePlan | None] = [
            None
            if self.probe is not None
            else EnginePlan(
                self.engine if g.spec.kind == "frame" else "torch", self.precision, compile, by
            )
            for g in self.groups
        ]

    @property
    def groups(self) -> list[SourceGroup]:
        return self.preprocessor.groups

    @property
    def dims(self) -> dict[str, int]:
        """Feature size of every source."""
        out = {}
        for group in self.groups:
            for key, name in group.sources:
                out[key] = group.dim(name)
        return {key: out[key] for key in self.keys}

    def describe(self) -> dict[str, object]:
        """Settings that change how (not what) features are computed, for logs and reports.

        ``engine`` / ``precision`` / ``compile`` are the networks' (``'mixed'`` where they
        differ); ``engines`` has each network's :class:`EnginePlan` (``None``: not run yet).
        """
        plans = [p for p in self.plans if p is not None]

        def common(values: list[Any], default: Any) -> Any:
            if not values or self.probe is None:
                return default
            return values[0] if len(set(values)) == 1 else "mixed"

        return {
            "device": str(self.device),
            "precision": common([p.precision for p in plans], self.precision),
            "engine": common([p.engine for p in plans], self.engine),
            "channels_last": self._channels_last,
            "compile": common([p.compiled for p in plans], self.compiled),
            "engines": {
                self._label(i): (p.describe() if p is not None else None)
                for i, p in enumerate(self.plans)
            },
            "compile_check": dict(self.compile_check),
            "frozen": [self.groups[i].backbone for i in sorted(self._frozen)],
            "chunk_size": self.chunk_size,
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }

    def _label(self, index: int) -> str:
        """A group's name in reports: its first source key (unique per group)."""
        return self.groups[index].sources[0][0]

    def engine_of(self, key: str) -> dict[str, Any] | None:
        """:meth:`EnginePlan.describe` of the network that computes source ``key`` (``None``
        before it has run under a probe)."""
        for group, plan in zip(self.groups, self.plans, strict=True):
            if any(k == key for k, _ in group.sources):
                return plan.describe() if plan is not None else None
        raise KeyError(key)

    def _autocast(self, precision: str | None = None) -> contextlib.AbstractContextManager:
        precision = precision or self.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def step(self, index: int, length: int = 1) -> int:
        """Items per network call of group ``index``: ``chunk_size`` frames, or
        ``chunk_size // length`` segments of ``length`` frames."""
        segment = self.groups[index].spec.kind == "segment"
        return max(1, self.chunk_size // length) if segment else self.chunk_size

    def _chunks(
        self, x: torch.Tensor, segment: bool, pad: bool, batch: int | None = None
    ) -> Iterator[torch.Tensor]:
        # segments arrive as (T, C, L, S, S): L frames each
        step = max(1, self.chunk_size // x.shape[2]) if segment else self.chunk_size
        step = min(step, batch) if batch else step
        for start in range(0, x.shape[0], step):
            chunk = x[start : start + step]
            if pad and 0 < len(chunk) < step:
                # one batch shape for the whole run: a compiled graph is specialised to it,
                # and a new shape would compile again (seconds to minutes)
                pad = chunk[-1:].expand(step - len(chunk), *chunk.shape[1:])
                chunk = torch.cat([chunk, pad])
            yield chunk

    def uses_onnx(self, index: int) -> bool:
        """Whether group ``index`` runs on onnxruntime (frame networks under engine='onnx', or
        chosen by a probe)."""
        plan = self.plans[index]
        frame = self.groups[index].spec.kind == "frame"
        return plan is not None and plan.engine == "onnx" and frame

    def onnx_path(self, index: int, shape: Sequence[int]) -> Path:
        """Cache file of group ``index``'s graph for items of ``shape`` ``(C, S, S)``."""
        return graph_spec(self.groups[index], shape).path()

    def _session(self, index: int, shape: tuple[int, ...]) -> Any:
        """Group ``index``'s onnxruntime session, exporting the graph unless it is cached."""
        if (index, shape) not in self._sessions:
            group = self.groups[index]
            module = NamedOutputs(self._eager[index], group.output_names).eval()
            self._sessions[index, shape] = cached_session(graph_spec(group, shape), module)
        return self._sessions[index, shape]

    def _run_onnx(self, index: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        group = self.groups[index]
        sess = self._session(index, tuple(x.shape[1:]))
        names = group.output_names
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        for chunk in x.split(min(self.chunk_size, ONNX_CHUNK)):
            arrays = sess.run(None, {"frames": np.ascontiguousarray(chunk.numpy(), np.float32)})
            for name, array in zip(names, arrays, strict=True):
                parts[name].append(torch.from_numpy(array))
        return {name: torch.cat(p) if p else torch.zeros(0) for name, p in parts.items()}

    def run(self, inputs: Mapping[tuple, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Features from :class:`Preprocessor` output: ``{source key: float32 (T, D)}`` on CPU."""
        out = self.run_groups(inputs)
        return {key: out[key] for key in self.keys}

    @torch.inference_mode()
    def run_groups(self, inputs: Mapping[tuple, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Like :meth:`run` for the groups whose preprocessing key is in ``inputs`` only (the
        extraction pipeline batches each key's items across videos on its own)."""
        out: dict[str, torch.Tensor] = {}
        for index, group in enumerate(self.groups):
            if group.prep_key not in inputs:
                continue
            x = inputs[group.prep_key]
            result = self._choose(index, x) if self.plans[index] is None else self._run(index, x)
            for key, name in group.sources:
                out[key] = result[name]
        return out

    def _run(self, index: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Group ``index``'s outputs for ``x`` the way its plan says."""
        plan = self.plans[index]
        assert plan is not None
        if self.uses_onnx(index):
            return self._run_onnx(index, x)
        return self._run_torch(
            index,
            x,
            self.networks[index],
            plan.precision,
            pad=plan.compiled,
            check=True,
            batch=plan.batch,
        )

    def _run_torch(
        self,
        index: int,
        x: torch.Tensor,
        net: torch.nn.Module,
        precision: str,
        *,
        pad: bool,
        check: bool = False,
        batch: int | None = None,
    ) -> dict[str, torch.Tensor]:
        group = self.groups[index]
        steps = len(x)
        segment = group.spec.kind == "segment"
        if segment:  # (T, L, C, S, S) -> (T, C, L, S, S): one clip per segment
            x = x.permute(0, 2, 1, 3, 4)
        fmt = torch.channels_last_3d if segment else torch.channels_last
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in group.output_names}
        for chunk in self._chunks(x, segment, pad, batch):
            chunk = chunk.to(self.device, non_blocking=True)
            if self._channels_last:
                chunk = chunk.contiguous(memory_format=fmt)
            with self._autocast(precision):
                result = _as_dict(net(chunk))
            if check and index in self._unchecked:
                result = self._check_compiled(index, chunk, result)
                net = self.networks[index]
            for name in parts:
                parts[name].append(result[name].float().cpu())
        # [:steps] drops the padding of a compiled run
        return {name: torch.cat(p)[:steps] if p else torch.zeros(0) for name, p in parts.items()}

    # -- the measured engine choice (probe) --------------------------------------------------

    def candidates(self, index: int) -> list[str]:
        """The engines a probe may choose from for group ``index``, fastest-first by the
        fixed rule's expectation (ties go to the earlier)."""
        assert self.probe is not None
        group = self.groups[index]
        precisions = probe_precisions(
            self._requested_precision, self.device, group.spec.low_precision
        )
        names = []
        for precision in precisions:
            if precision == "fp32" and group.spec.kind == "frame" and onnxruntime_available():
                names.append("onnx-fp32")
            if self.probe.compile:
                names.append(f"compiled-{precision}")
            names.append(f"eager-{precision}")
        return names

    def choice_key(self, index: int, x: torch.Tensor) -> dict[str, Any]:
        """The engine-choice cache key of group ``index`` on items shaped like ``x``'s."""
        group = self.groups[index]
        segment = group.spec.kind == "segment"
        network = {
            "backbone": group.backbone,
            "kind": group.spec.kind,
            "stream": group.stream,
            "outputs": group.output_names,
            "grid": group.grid,
        }
        return choice_key(
            "extract", network, (self.step(index, x.shape[1] if segment else 1), *x.shape[1:])
        )

    def _candidate(self, index: int, name: str, x: torch.Tensor) -> Candidate:
        plan = EnginePlan.named(name, "probe")
        eager = self._eager[index]
        if plan.engine == "onnx":
            return Candidate(name, plan.precision, lambda: lambda: self._run_onnx(index, x))
        if not plan.compiled:
            return Candidate(
                name,
                plan.precision,
                lambda: lambda: self._run_torch(index, x, eager, plan.precision, pad=False),
            )

        batch = self._compiled_batch(index)

        def build() -> Callable[[], Mapping[str, torch.Tensor]]:
            net = self._probe_nets[index, name] = compile_network(eager)
            return lambda: self._run_torch(index, x, net, plan.precision, pad=True, batch=batch)

        return Candidate(name, plan.precision, build)

    def _compiled_batch(self, index: int) -> int | None:
        """The call size of a probe's compiled candidate (frame networks)."""
        frame = self.groups[index].spec.kind == "frame"
        return min(self.chunk_size, COMPILED_CHUNK) if frame else None

    def _adopt(self, index: int, plan: EnginePlan) -> None:
        """Run group ``index`` as ``plan`` says from now on."""
        if plan.compiled and plan.chosen_by in ("probe", "cache"):
            plan.batch = self._compiled_batch(index)
        self.plans[index] = plan
        net = self._eager[index]
        self._unchecked.discard(index)
        self._frozen.discard(index)
        if plan.engine == "torch" and plan.compiled:
            probed = self._probe_nets.get((index, plan.name))
            net = probed if probed is not None else compile_network(net)
            self._frozen.add(index)
            if probed is None:  # not checked by a probe in this run: check its first batch
                self._unchecked.add(index)
            elif plan.trials and plan.trials[plan.name].error is not None:
                self.compile_check[self.groups[index].backbone] = plan.trials[plan.name].error
        self.networks[index] = net
        for key in [k for k in self._probe_nets if k[0] == index]:
            del self._probe_nets[key]  # the compiled candidates not chosen
        if not self.uses_onnx(index):
            for key in [k for k in self._sessions if k[0] == index]:
                del self._sessions[key]

    def _rule_plan(self, index: int) -> EnginePlan:
        frame = self.groups[index].spec.kind == "frame"
        return EnginePlan(self.engine if frame else "torch", self.precision, False, "rule")

    def _choose(self, index: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decide group ``index``'s engine on its first batch ``x`` (cache, else probe, else
        the fixed rule) and return that batch's outputs."""
        probe, group = self.probe, self.groups[index]
        assert probe is not None
        allowed = self.candidates(index)
        key = self.choice_key(index, x)
        trials = probe.cache.load(key)
        rule = self._rule_plan(index)  # the usual choice, kept unless another clearly wins
        compiled = probe.compile and rule.engine == "torch" and rule.precision != "fp32"
        usual = f"compiled-{rule.precision}" if compiled else rule.name
        covered = trials is not None and all(n in trials for n in allowed)
        chosen = pick(trials, allowed, usual) if trials is not None and covered else None
        if trials is not None and chosen is not None:
            self._adopt(index, EnginePlan.named(chosen, "cache", trials))
            result = self._run(index, x)
            if self._agrees_with_fp32(index, x, result):
                log.info("%s: engine %s (measured before on this CPU)", group.backbone, chosen)
                return result
            probe.cache.forget(key)
        segment = group.spec.kind == "segment"
        full = len(x) >= self.step(index, x.shape[1] if segment else 1)
        if not probe.measure or not full or len(allowed) < 2:
            plan = self._rule_plan(index)
            if len(allowed) == 1:
                plan = EnginePlan.named(allowed[0], "rule")
            self._adopt(index, plan)
            return self._run(index, x)
        start = time.perf_counter()
        reference = self._run_torch(index, x, self._eager[index], "fp32", pad=False)
        candidates = [self._candidate(index, name, x) for name in allowed]
        trials, outputs = measure(
            candidates, reference, len(x), rounds=probe.rounds, timing=probe.timing
        )
        chosen = pick(trials, allowed, usual)
        probe.cache.save(key, trials, chosen)
        log.info(
            "%s: engine %s, measured in %.1f s (%s)",
            group.backbone,
            chosen,
            time.perf_counter() - start,
            ", ".join(
                f"{n} {t.items_per_s:.1f}/s" if t.ok and t.items_per_s else f"{n} refused"
                for n, t in trials.items()
            ),
        )
        if chosen is None:  # every candidate refused (only bf16 allowed, and it is off)
            log.warning(
                "%s: no engine candidate agreed with fp32: running eager fp32", group.backbone
            )
            self._adopt(index, EnginePlan("torch", "fp32", False, "probe", trials))
            return reference
        self._adopt(index, EnginePlan.named(chosen, "probe", trials))
        return dict(outputs[chosen])

    def _agrees_with_fp32(
        self, index: int, x: torch.Tensor, result: Mapping[str, torch.Tensor]
    ) -> bool:
        """A cached choice's first batch against eager fp32 (its first :data:`CHECK_ITEMS`
        items): the cache says what was fast, not that this run's graph is right. Compiled
        plans have their own check (:meth:`_check_compiled`)."""
        plan = self.plans[index]
        assert plan is not None
        if plan.compiled or (plan.engine == "torch" and plan.precision == "fp32"):
            return True
        probe = x[:CHECK_ITEMS]
        ref = self._run_torch(index, probe, self._eager[index], "fp32", pad=False)
        err = max(relative_error(result[n][: len(probe)], ref[n]) for n in ref)
        limit = FEATURE_TOLERANCE[plan.precision]
        if err <= limit:
            return True
        log.warning(
            "%s: the cached engine %s is %.2g off eager fp32 (tolerance %.2g): measuring again",
            self.groups[index].backbone,
            plan.name,
            err,
            limit,
        )
        return False

    def _check_compiled(
        self, index: int, chunk: torch.Tensor, result: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Hold a compiled group's first batch against the eager network in fp32.

        Inductor has miscompiled before (frozen Inception-ResNet-V2 came out 17% off while
        eager bf16 was 0.5% off), so a group over :data:`FEATURE_TOLERANCE` (or twice the eager
        network's own error in the same precision, if larger) is compiled again without
        freezing, and if that is wrong too it runs eager, with a warning. The check runs the
        eager network on the batch's first :data:`CHECK_ITEMS` items (a miscompile is wrong
        on every item), once or twice per job.
        """
        group = self.groups[index]
        plan = self.plans[index]
        precision = plan.precision if plan is not None else self.precision
        probe = chunk[:CHECK_ITEMS]
        ref = _as_dict(self._eager[index](probe))
        err = max(relative_error(result[name][: len(probe)], ref[name]) for name in result)
        self.compile_check[group.backbone] = err
        limit = FEATURE_TOLERANCE[precision]
        if err > limit and precision != "fp32":
            # A deep network can be over the bound in bf16 however it runs (frozen random-weight
            # ResNet152 was 3.3e-2 off); no worse than twice eager's own error is no miscompile.
            with self._autocast(precision):
                eager = _as_dict(self._eager[index](probe))
            limit = max(limit, 2 * max(relative_error(eager[n], ref[n]) for n in result))
        if err <= limit:
            self._unchecked.discard(index)
            return result
        frozen = index in self._frozen
        log.warning(
            "compiled %s is %.2g off eager fp32 (tolerance %.2g in %s): %s",
            group.backbone,
            err,
            limit,
            precision,
            "compiling it without freezing" if frozen else "running it eager",
        )
        if frozen:
            self._frozen.discard(index)
            self.networks[index] = compile_network(self._eager[index], freezing=False)
        else:
            self._unchecked.discard(index)
            self.networks[index] = self._eager[index]
        with self._autocast(precision):
            again = _as_dict(self.networks[index](chunk))
        return self._check_compiled(index, chunk, again) if frozen else again

    def __call__(
        self, frames: np.ndarray | None, flow: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        return self.run(self.preprocessor(frames, flow))
