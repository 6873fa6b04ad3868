"""ONNX for harkit: one opset, one exporter, one cache of exported graphs, one way to open them.

Three things export PyTorch networks to ONNX: the extraction's onnxruntime engine
(:func:`harkit.features.engines.graph_spec`, frame backbones at a dynamic batch), the stream
engine (:mod:`harkit.infer.engine`, frame encoders at batch 1) and ``harkit export``
(:mod:`harkit.infer.export`, a run's encoders and head into a folder of the user's). All of
them go through :func:`export_onnx`:

* PyTorch's TorchScript-based exporter (``dynamo=False``, with ``dynamic_axes``): in torch
  2.14 the dynamo exporter needs the ``onnxscript`` package, and the TorchScript one exports
  GRU/LSTM (bidirectional too) with a dynamic time axis and matches PyTorch to ~1e-7;
* written to a temp file beside the target and renamed over it, so a failed or killed export
  leaves the previous file or none, never a partial graph that a later run would load.

The graphs the engines export for themselves are cached under ``$HARKIT_CACHE/onnx`` (default
``~/.cache/harkit/onnx``), one file per :class:`GraphSpec`: the name of the file holds a hash
of everything that shapes the graph (the network's identity, which names its weights, the
example input's shape, the input/output names and dynamic axes, the opset, and the torch and
harkit versions: the exporter and the network builders). :func:`cached_session` opens one with
:func:`onnx_session`, exporting it first when it is missing and again when onnxruntime cannot
load the cached file.

Importing this module does not import torch, so the CLI can read :data:`OPSET`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harkit.io import atomic_output

if TYPE_CHECKING:
    import onnxruntime
    import torch
    from torch import nn

__all__ = [
    "OPSET",
    "OPSET_RANGE",
    "GraphSpec",
    "cached_export",
    "cached_session",
    "export_onnx",
    "module_digest",
    "onnx_cache_dir",
    "onnx_session",
    "onnxruntime_available",
]

log = logging.getLogger(__name__)

OPSET = 17
"""The opset harkit exports at (``harkit export --opset`` may ask for another)."""

OPSET_RANGE = (7, 20)
"""The opsets the TorchScript-based exporter can write."""


def export_onnx(
    module: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = OPSET,
) -> Path:
    """Export ``module`` traced on ``example`` to ``path`` atomically (see the module docstring)."""
    import torch

    path = Path(path)
    with atomic_output(path, suffix=".onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about its own deprecation and about trace-time
        # constants (the full-length check of the recurrent heads), both expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return path


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_session(path: str | Path, *, spin: bool = False) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session using torch's thread count, for graphs called between
    PyTorch ops (preprocessing, recurrent heads, decoding).

    ``spin``: let ORT's workers spin between the graph's ops. By default they sleep, since
    spinning workers steal the cores from the PyTorch ops that run between large batch calls;
    at batch 1 (streams) the wake-ups cost more (EfficientNet-Lite0 on 2 cores: 4.4 ms per
    frame spinning, 5.9 ms sleeping; ``benchmarks/infer.py``).
    """
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no warnings about unused initialisers
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_cache_dir() -> Path:
    """Folder of the cached graphs: ``$HARKIT_CACHE/onnx`` or ``~/.cache/harkit/onnx``."""
    from harkit.engine_choice import cache_root

    return cache_root() / "onnx"


def module_digest(module: nn.Module) -> str:
    """A hash of a module's structure (``repr``) and parameters/buffers: the identity of a
    network whose weights have no name (a trained run's encoder)."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GraphSpec:
    """One cached graph: what is exported and how it is called, i.e. what its file depends on.

    ``identity`` names the network and its weights: a builder name and weights tag where the
    weights are named (a backbone registry entry), :func:`module_digest` where they are not,
    and the outputs taken from it. The module itself is passed to :func:`cached_export`.
    """

    name: str
    """Start of the file name, for people looking into the cache (the hash tells graphs apart)."""
    identity: Mapping[str, Any]
    input_shape: tuple[int, ...]
    """Shape of the example the graph is traced on (batch first; zeros)."""
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None

    def key_fields(self) -> dict[str, Any]:
        """Everything that changes the exported graph; its hash names the cache file."""
        import torch

        from harkit import __version__

        return {
            "name": self.name,
            "identity": dict(self.identity),
            "input": [int(s) for s in self.input_shape],
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "dynamic_axes": {
                name: {str(axis): label for axis, label in axes.items()}
                for name, axes in (self.dynamic_axes or {}).items()
            },
            "opset": OPSET,
            # the TorchScript exporter writes the protobuf itself: the onnx package's version
            # does not change the graph
            "torch": torch.__version__,
            "harkit": __version__,
        }

    def path(self) -> Path:
        """The cache file of this graph (it may not exist yet)."""
        digest = hashlib.sha256(json.dumps(self.key_fields(), sort_keys=True).encode()).hexdigest()
        return onnx_cache_dir() / f"{self.name}-{digest[:16]}.onnx"


def cached_export(spec: GraphSpec, module: nn.Module, *, refresh: bool = False) -> Path:
    """The cached graph of ``spec``, exported from ``module`` unless it is cached already
    (``refresh``: export again anyway)."""
    import torch

    path = spec.path()
    if refresh or not path.is_file():
        start = time.perf_counter()
        export_onnx(
            module,
            torch.zeros(spec.input_shape),
            path,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes,
        )
        log.info("exported %s to %s in %.1f s", spec.name, path, time.perf_counter() - start)
    return path


def cached_session(
    spec: GraphSpec, module: nn.Module, *, spin: bool = False
) -> onnxruntime.InferenceSession:
    """:func:`onnx_session` on :func:`cached_export`'s graph; a cached file onnxruntime cannot
    load (damaged outside harkit: harkit's own writes are atomic) is exported again."""
    path = cached_export(spec, module)
    try:
        return onnx_session(path, spin=spin)
    except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
        log.warning("re-exporting %s: onnxruntime cannot load it (%s)", path, exc)
        return onnx_session(cached_export(spec, module, refresh=True), spin=spin)
