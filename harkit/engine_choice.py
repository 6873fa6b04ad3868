"""Engines chosen per CPU by measurement: a short probe, its cache, and the store's record.

Which engine runs a backbone fastest on a CPU (onnxruntime, ``torch.compile``-d PyTorch, eager
PyTorch; fp32, or bf16 where the CPU has it natively) is not a fixed rule: on a 2-core
AVX512-BF16 CPU onnxruntime fp32 was within 3% of compiled PyTorch, on a 2-core AVX2 CPU it
reached only 60% of it (GoogLeNet), and on a CPU with AMX compiled bf16 was 2.5-3.3x both. So
harkit measures, once per CPU:

* :func:`measure` runs each :class:`Candidate` on the same batch: a first call (export,
  compile and warm-up, not timed) whose output is held against the eager fp32 reference within
  :data:`harkit.precision.FEATURE_TOLERANCE` of the candidate's precision (a wrong candidate,
  e.g. a miscompiled graph, is refused however fast it is), then ``rounds`` timed calls
  each, interleaved (candidate A, B, C, A, B, C, ...) so that load from other processes falls
  on all of them alike; the median call time ranks them.
* :class:`ChoiceCache` keeps the measurements per :func:`choice_key` (the CPU's model and
  flags, the ISA caps in force, the thread count, the network and its input shape, the torch /
  onnxruntime / harkit versions) under ``$HARKIT_CACHE/engines`` (default
  ``~/.cache/harkit/engines``), one JSON file per key written atomically (temp file + rename),
  so two processes read a complete file or none; a damaged file is ignored with a warning and
  measured again.
* :func:`record_engine` writes which engine made a store's features into the store folder
  (``engines.json``, ``engines-rank<k>-of-<n>.json`` under torchrun/srun): one entry per run
  with its start and end time, comparable with the manifest rows' ``updated`` times.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harkit.io import atomic_write_text, read_json_object
from harkit.precision import FEATURE_TOLERANCE

__all__ = [
    "PREFER_MARGIN",
    "PROBE_ROUNDS",
    "Candidate",
    "ChoiceCache",
    "ProbeSettings",
    "Trial",
    "cache_root",
    "choice_key",
    "cpu_signature",
    "engine_record_name",
    "measure",
    "pick",
    "read_engine_records",
    "record_engine",
    "wall_timing",
]

log = logging.getLogger(__name__)

#: Timed calls per candidate (after the untimed first call).
PROBE_ROUNDS = 3
#: Bumped when the probe's measurements stop being comparable with older cache files.
PROBE_VERSION = 1
#: Environment variables that cap the instruction set a library uses: a different cap is a
#: different CPU for the choice (``ONEDNN_MAX_CPU_ISA=AVX2`` emulates an AVX2-only CPU for
#: oneDNN, ``ATEN_CPU_CAPABILITY=avx2`` for ATen and inductor; onnxruntime has no such switch).
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cache_root() -> Path:
    """harkit's user cache: ``$HARKIT_CACHE`` or ``~/.cache/harkit``."""
    root = os.environ.get("HARKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "harkit"


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = "", []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            name = name.strip()
            if name == "model name" and not model:
                model = value.strip()
            elif name in ("flags", "Features") and not flags:  # x86 / arm
                flags = sorted(set(value.split()))
            if model and flags:
                break
    return model or platform.processor() or platform.machine(), flags


def onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def cpu_signature() -> dict[str, Any]:
    """What makes one CPU (as this process sees it) differ from another for engine speed."""
    model, flags = _cpuinfo()
    return {
        "model": model,
        "machine": platform.machine(),
        "flags": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "env": {name: os.environ[name] for name in ISA_ENV if name in os.environ},
        "threads": torch.get_num_threads(),
    }


def choice_key(task: str, network: Mapping[str, Any], shape: Sequence[int]) -> dict[str, Any]:
    """The cache key of one engine choice: ``task`` (``'extract'``, ``'stream'``), the network
    (backbone, outputs, ...) and its input ``shape`` (batch first) on this CPU and software."""
    from harkit import __version__

    return {
        "version": PROBE_VERSION,
        "task": task,
        "cpu": cpu_signature(),
        "network": dict(network),
        "input": [int(s) for s in shape],
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version(),
        "harkit": __version__,
    }


def key_digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class Trial:
    """One candidate's probe result."""

    candidate: str
    precision: str = "fp32"
    seconds: float | None = None
    """Median wall seconds of one timed call (the probe batch)."""
    items_per_s: float | None = None
    error: float | None = None
    """Largest relative error (``||x - ref|| / ||ref||`` per item) against eager fp32."""
    tolerance: float | None = None
    refused: str = ""
    """Why the candidate may not be used ('' when it may)."""

    @property
    def ok(self) -> bool:
        return not self.refused and self.seconds is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Trial:
        if not isinstance(data, dict) or not isinstance(data.get("candidate"), str):
            raise ValueError("a trial is an object with a 'candidate' name")
        trial = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        for name in ("seconds", "items_per_s", "error", "tolerance"):
            value = getattr(trial, name)
            if value is not None and (
                not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"trial {trial.candidate!r}: {name} {value!r}")
        if not isinstance(trial.refused, str) or not isinstance(trial.precision, str):
            raise ValueError(f"trial {trial.candidate!r}: bad refused/precision")
        return trial


Features = Mapping[str, torch.Tensor]


@dataclass
class Candidate:
    """One way to run a network: ``build()`` prepares it (export, compile, ...) and returns a
    function that runs the probe batch and returns its features by output name."""

    name: str
    precision: str
    build: Callable[[], Callable[[], Features]] = field(repr=False)


def wall_timing(name: str, run: Callable[[], Any]) -> float:
    """Wall seconds of one ``run()`` (the default :func:`measure` timing)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest ``||got - want|| / ||want||`` over the items (rows) of a batch."""
    got, want = got.detach().float().flatten(1), want.detach().float().flatten(1)
    if got.shape != want.shape:
        return math.inf
    err = (got - want).norm(dim=1) / want.norm(dim=1).clamp_min(1e-12)
    return float(err.max()) if len(err) else 0.0


def _error(out: Features, reference: Features) -> float:
    if set(out) != set(reference):
        return math.inf
    worst = max((relative_error(out[k], reference[k]) for k in reference), default=0.0)
    return worst if math.isfinite(worst) else math.inf


def measure(
    candidates: Sequence[Candidate],
    reference: Features,
    items: int,
    *,
    rounds: int = PROBE_ROUNDS,
    timing: Callable[[str, Callable[[], Any]], float] = wall_timing,
    tolerance: Mapping[str, float] | None = None,
) -> tuple[dict[str, Trial], dict[str, Features]]:
    """Probe ``candidates`` on one batch of ``items`` items: ``({name: Trial}, {name: the
    features of its first call})`` for the candidates that passed.

    A candidate whose build or first call raises, or whose features are off ``reference`` by
    more than ``tolerance[precision]`` (default :data:`FEATURE_TOLERANCE`), is refused and
    not timed. ``timing(name, run)`` returns the seconds of one ``run()`` (tests inject
    fake ones).
    """
    limits = dict(FEATURE_TOLERANCE if tolerance is None else tolerance)
    trials: dict[str, Trial] = {}
    runs: dict[str, Callable[[], Features]] = {}
    outputs: dict[str, Features] = {}
    for cand in candidates:
        trial = trials[cand.name] = Trial(cand.name, cand.precision)
        trial.tolerance = limits.get(cand.precision, limits.get("fp32", 1e-4))
        try:
            run = cand.build()
            start = time.perf_counter()
            out = run()
            log.debug("probe %s: first call %.1f s", cand.name, time.perf_counter() - start)
        except Exception as exc:  # an export / compile / runtime failure: not a candidate
            trial.refused = f"failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            log.info("engine probe: %s %s", cand.name, trial.refused)
            continue
        err = _error(out, reference)
        trial.error = None if math.isinf(err) else err
        if not err <= trial.tolerance:
            trial.refused = (
                f"features off fp32 by {err:.2g} (tolerance {trial.tolerance:.2g} "
                f"in {cand.precision})"
            )
            log.warning("engine probe: %s refused: %s", cand.name, trial.refused)
            continue
        runs[cand.name], outputs[cand.name] = run, out
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds if names else 0):
        # rotate the order each round: none always runs right after the same neighbour
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(float(timing(name, runs[name])))
    for name, values in times.items():
        trial = trials[name]
        trial.seconds = statistics.median(values) if values else None
        if trial.seconds is not None and trial.seconds > 0:
            trial.items_per_s = items / trial.seconds
        elif trial.seconds is not None:
            trial.items_per_s = math.inf
    return trials, outputs


#: How much faster than the usual choice (``prefer``) another candidate must measure to be
#: picked instead: a shared machine's noise must not flip a choice that is cached for good.
PREFER_MARGIN = 0.1


def pick(
    trials: Mapping[str, Trial],
    allowed: Sequence[str],
    prefer: str | None = None,
    margin: float = PREFER_MARGIN,
) -> str | None:
    """The fastest usable trial among ``allowed`` (earlier in ``allowed`` on a tie); ``prefer``
    (the fixed rule's choice) unless the fastest beats it by more than ``margin``."""
    usable = [n for n in allowed if n in trials and trials[n].ok]
    if not usable:
        return None
    best = min(usable, key=lambda n: (trials[n].seconds, allowed.index(n)))
    if prefer in usable and prefer != best:
        fastest, usual = trials[best].seconds, trials[prefer].seconds
        assert fastest is not None and usual is not None
        if fastest * (1 + margin) >= usual:
            return prefer
    return best


class ChoiceCache:
    """Probe results per :func:`choice_key`, one JSON file each under ``folder`` (default
    ``$HARKIT_CACHE/engines``); see the module docstring."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._folder = Path(folder) if folder is not None else None

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else cache_root() / "engines"

    def path(self, key: Mapping[str, Any]) -> Path:
        return self.folder / f"{key_digest(key)}.json"

    def load(self, key: Mapping[str, Any]) -> dict[str, Trial] | None:
        """The trials measured for ``key``; None when there are none, or (with a warning) when
        the file is damaged."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            data = read_json_object(path)
            if data.get("key") != json.loads(json.dumps(key)):
                raise ValueError("it was written for another key")
            trials = data.get("trials")
            if not isinstance(trials, dict) or not trials:
                raise ValueError("no trials")
            out = {name: Trial.from_dict(value) for name, value in trials.items()}
            if any(trial.candidate != name for name, trial in out.items()):
                raise ValueError("a trial under another candidate's name")
            return out
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "ignoring damaged engine-choice cache %s (%s); measuring again",
                path,
                " ".join(str(exc).split())[:200],
            )
            return None

    def save(self, key: Mapping[str, Any], trials: Mapping[str, Trial], chosen: str | None) -> Path:
        """Write ``trials`` for ``key`` atomically (a reader never sees a partial file)."""
        path = self.path(key)
        record = {
            "key": key,
            "chosen": chosen,
            "measured_at": time.time(),
            "trials": {name: trial.to_dict() for name, trial in trials.items()},
        }
        try:
            atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
        except OSError as exc:  # a read-only cache: the choice holds for this run only
            log.warning("could not cache the engine choice in %s (%s)", path, exc)
        return path

    def forget(self, key: Mapping[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()


# -- the store's record of which engine made its features ----------------------------------

ENGINE_RECORD = "engines.json"
#: Runs kept per record file (the oldest go first).
RECORD_RUNS = 100


@dataclass(frozen=True)
class ProbeSettings:
    """How ``engine='auto'`` chooses an engine by measurement, for extraction and streams:
    the cached choice for this CPU, network and input shape if one covers the candidates,
    else a probe on the first full batch (a stream's probe frames)."""

    compile: bool = False
    """Compiled candidates may be tried (a first compile takes a minute or more on 2 cores,
    so long jobs only; a stream compiles again on every start)."""
    measure: bool = True
    """Probe when the cache has no answer; False: the fixed rule."""
    rounds: int = PROBE_ROUNDS
    """Timed calls of the first batch per candidate."""
    timing: Callable[[str, Callable[[], Any]], float] = wall_timing
    """``timing(candidate, run)`` -> seconds of one ``run()`` (tests inject fake ones)."""
    cache: ChoiceCache = field(default_factory=ChoiceCache)


def engine_record_name(rank: int = 0, world_size: int = 1) -> str:
    """``engines.json``, or ``engines-rank<k>-of-<n>.json`` for rank k of n (one writer each,
    like the manifest shards)."""
    return ENGINE_RECORD if world_size <= 1 else f"engines-rank{rank}-of-{world_size}.json"


def record_engine(
    store_path: str | Path, run: Mapping[str, Any], rank: int = 0, world_size: int = 1
) -> Path:
    """Add (or update, by its ``'run'`` id) one run's entry in the store's engine record."""
    path = Path(store_path) / engine_record_name(rank, world_size)
    runs: list[dict[str, Any]] = []
    if path.is_file():
        try:
            old = read_json_object(path).get("runs", [])
            runs = [r for r in old if isinstance(r, dict)] if isinstance(old, list) else []
        except (OSError, ValueError) as exc:
            log.warning("rewriting damaged engine record %s (%s)", path, exc)
    runs = [r for r in runs if r.get("run") != run.get("run")] + [dict(run)]
    text = json.dumps({"runs": runs[-RECORD_RUNS:]}, indent=1, sort_keys=True) + "\n"
    return atomic_write_text(path, text)


def read_engine_records(store_path: str | Path) -> list[dict[str, Any]]:
    """Every run recorded in a store folder (all ranks' files), oldest first."""
    runs: list[dict[str, Any]] = []
    for path in sorted(Path(store_path).glob("engines*.json")):
        try:
            data = read_json_object(path).get("runs", [])
        except (OSError, ValueError) as exc:
            log.warning("ignoring damaged engine record %s (%s)", path, exc)
            continue
        runs += [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    return sorted(runs, key=lambda r: (r.get("started") or 0, str(r.get("run"))))
