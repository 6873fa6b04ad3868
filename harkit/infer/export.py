"""Export a run as two separate graphs, the frame encoder(s) and the temporal head.

``export_run(run, out, format='onnx'|'torchscript')`` writes

* ``encoder_<branch>.onnx`` per encoder branch (one per feature source in features mode; the
  CNN + FC embedding of an end-to-end CRNN; seed 003's 3D CNN trunk), input ``frames`` =
  the *preprocessed* batch (``(N, 3, S, S)``, segments ``(N, 3, L, S, S)``, C3D clips
  ``(B, T, 3, S, S)``), dynamic batch (and time where the network has one);
* ``head.onnx``: ``x (B, T, D)`` -> ``logits (B, C)`` with dynamic ``B`` and ``T``;
* ``export.json``: files, shapes, classes, the parity numbers, and everything needed to feed
  the graphs without harkit: each branch's ``preprocessing`` (colour order, value scaling,
  shorter-side resize, centre crop ``[h, w]``, mean, std, layout), the ``sampling`` of frames
  per clip (and the rule that picks them), the training clip (frames, fps). The same JSON is
  in every ONNX file's metadata (key ``harkit``), so a lone ``.onnx`` describes itself.

Preprocessing (resize, crop, normalise) stays in Python and is shared with the PyTorch engine.
The head is exported on its **full-length** path (every sequence uses all its T steps):
packed sequences do not export. Callers run the head on each clip's valid steps only, which is
what packing computes, so predictions match the PyTorch engine (``Recognizer`` groups clips of
equal length into one call). Streaming (``init_state``/``step``) stays on PyTorch.

ONNX files are written by :func:`harkit.onnx.export_onnx` (PyTorch's TorchScript-based
exporter, which exports GRU/LSTM with a dynamic time axis; atomically, so a failed export leaves
no partial file).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from harkit.infer.errors import ExportError
from harkit.infer.pipeline import Branch, SplitModel, split_model
from harkit.io import atomic_output, atomic_write_text
from harkit.onnx import OPSET, export_onnx, onnx_session
from harkit.train.run import load_run, read_run_info

__all__ = ["EXPORT_VERSION", "ExportFormat", "ExportReport", "attach_onnx", "export_run"]

log = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_VERSION = 1
MANIFEST = "export.json"


@dataclass
class ExportReport:
    """What was written and how closely the exported graphs match PyTorch."""

    out_dir: str
    format: str
    files: list[str]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _HeadFullLength(nn.Module):
    """``head(x)`` with every sequence at full length (no ``lengths``: no packing)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x)


def _example_input(branch: Branch, batch: int) -> Tensor:
    gen = torch.Generator().manual_seed(batch)
    return torch.randn((batch, *branch.input_shape), generator=gen)


def _dynamic_axes(branch: Branch) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {"frames": {0: "batch"}}
    if branch.kind == "segment":
        axes["frames"][2] = "length"
    if branch.kind == "clip":
        axes["frames"][1] = "time"
    for i in range(len(branch.outputs)):
        axes[f"features{i}"] = {0: "batch", 1: "steps"} if branch.kind == "clip" else {0: "batch"}
    return axes


def _trace(module: nn.Module, example: Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit deprecation + the same trace-time constants
        torch.jit.trace(module, example, check_trace=False).save(str(path))


def _session(path: Path) -> Any:
    try:
        return onnx_session(path)
    except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
        raise ExportError(f"{path}: onnxruntime cannot load it ({exc})") from exc


def _max_diff(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def export_run(
    run: str | Path,
    out: str | Path | None = None,
    format: ExportFormat = "onnx",
    *,
    opset: int = OPSET,
    check: bool = True,
    tolerance: float = 1e-3,
    flow: Any = None,
    flow_method: str | None = None,
) -> ExportReport:
    """Export the run's encoder branch(es) and head; parity-check them against PyTorch.

    ``out`` defaults to ``RUN/onnx`` (or ``RUN/torchscript``), where ``harkit predict
    --engine onnx`` looks. The check raises :class:`ExportError` when an output differs by
    more than ``tolerance`` (fp32 graphs agree to ~1e-5).

    Flow-stream runs export the flow branch like any other (its input is the preprocessed
    flow); the flow itself is computed in Python before it, as preprocessing is, with the
    settings written to ``export.json`` (``flow``, from ``flow`` / ``flow_method`` /
    ``run.json``, see :func:`harkit.infer.flow.resolve_flow`).
    """
    if format not in ("onnx", "torchscript"):
        raise ExportError(f"unknown export format '{format}'; expected 'onnx' or 'torchscript'")
    start = time.perf_counter()
    recipe, classes, net = load_run(run)
    info = read_run_info(run)
    model = split_model(  # the plain fp32 graphs
        recipe,
        classes,
        net,
        fast=False,
        flow=flow,
        flow_method=flow_method,
        run_info=info,
    )
    out_dir = Path(out) if out else Path(run) / format
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".onnx" if format == "onnx" else ".pt"
    report = ExportReport(str(out_dir), format, [])
    manifest: dict[str, Any] = {
        "export_version": EXPORT_VERSION,
        "format": format,
        "opset": opset if format == "onnx" else None,
        "recipe": recipe.name,
        "classes": classes,
        "branches": [],
        "head": {
            "file": "head" + suffix,
            "input": "x",
            "output": "logits",
            "input_dim": model.encoder.output_dim,
            "full_length_only": True,
            "note": "softmax(logits) gives the class probabilities; the encoders' "
            "outputs, concatenated in branch order per step, are x",
        },
        "sampling": _sampling(recipe),
        "training_clip": info.train_clips and info.train_clips.model_dump(mode="json"),
        "flow": model.flow.to_dict() if model.flow is not None else None,
    }

    with torch.no_grad():
        for branch in model.encoder.branches:
            module = branch.module.eval()
            example = _example_input(branch, 2)
            path = out_dir / f"encoder_{branch.name}{suffix}"
            names = [f"features{i}" for i in range(len(branch.outputs))]
            if format == "onnx":
                export_onnx(
                    module,
                    example,
                    path,
                    input_names=["frames"],
                    output_names=names,
                    dynamic_axes=_dynamic_axes(branch),
                    opset=opset,
                )
            else:
                _trace(module, example, path)
            report.files.append(path.name)
            manifest["branches"].append(
                {
                    "name": branch.name,
                    "file": path.name,
                    "kind": branch.kind,
                    "input": "frames",
                    "outputs": names,
                    "input_shape": list(branch.input_shape),
                    "sources": branch.outputs,
                    "output_dims": branch.output_dims,
                    "preprocessing": _preprocessing(model, branch),
                }
            )
            if check:
                # A different batch size than the traced one proves the axis is dynamic.
                probe = _example_input(branch, 3)
                got, want = _run_file(path, format, probe), module(probe)
                report.max_abs_diff[path.name] = max(
                    _max_diff(g, w) for g, w in zip(got, want, strict=True)
                )

        head = _HeadFullLength(model.head).eval()
        example = torch.randn(
            2, 5, model.encoder.output_dim, generator=torch.Generator().manual_seed(1)
        )
        path = out_dir / ("head" + suffix)
        if format == "onnx":
            export_onnx(
                head,
                example,
                path,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch", 1: "time"}, "logits": {0: "batch"}},
                opset=opset,
            )
        else:
            _trace(head, example, path)
        report.files.append(path.name)
        if check:
            diffs = []
            for shape in ((1, 1), (3, 11)):  # other batch sizes and lengths than traced
                probe = torch.randn(*shape, model.encoder.output_dim)
                diffs.append(_max_diff(_run_file(path, format, probe)[0], head(probe)))
            report.max_abs_diff[path.name] = max(diffs)

    report.seconds = round(time.perf_counter() - start, 3)
    manifest["max_abs_diff"] = report.max_abs_diff
    if format == "onnx":
        for name in report.files:
            _describe_onnx(out_dir / name, manifest)
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    report.files.append(MANIFEST)
    worst = max(report.max_abs_diff.values(), default=0.0)
    if check and worst > tolerance:
        raise ExportError(
            f"exported graphs differ from PyTorch by up to {worst:.3g} (> {tolerance}): "
            + ", ".join(f"{k}={v:.3g}" for k, v in report.max_abs_diff.items())
        )
    return report


_SAMPLING_RULES = {
    "uniform": "frames round(linspace(0, n - 1, num_frames)) of a video of n frames (a video "
    "of fewer than num_frames frames: all of them, and the head sees only those)",
    "tsn": "num_frames equal segments of the video, the middle frame of each "
    "(floor((start + end) / 2))",
    "stride": "every stride-th frame from frame 0, at most max_frames",
    "all": "every frame, at most max_frames",
    "segments": "consecutive segments of segment_length frames, at most max_segments",
}


def _sampling(recipe: Any) -> dict[str, Any]:
    """The recipe's frame sampling, with the rule that turns it into frame indices."""
    sampling = recipe.input.sampling
    return {**sampling.model_dump(mode="json"), "rule": _SAMPLING_RULES.get(sampling.strategy)}


def _preprocessing(model: SplitModel, branch: Branch) -> dict[str, Any]:
    """What turns a decoded frame into ``branch``'s input, in words a plain script can follow."""
    from harkit.infer.engine import FramePrep

    transform = model.encoder.rgb_transform(branch)
    if transform is None:
        if model.flow is not None:
            return {
                "input": "optical flow, see 'flow' (uint8 planes / 127.5 - 1, resized and "
                "cropped as the frames)"
            }
        return {"input": "see the recipe"}
    prep = FramePrep.from_transform(transform)
    if prep is None:
        return {"input": "see the recipe (preprocessing other than resize, crop, normalise)"}
    return {
        "color": "RGB",
        "values": "uint8 / 255",
        "resize_shorter_side": prep.resize,
        "interpolation": f"{prep.interpolation}, antialiased"
        if prep.antialias
        else prep.interpolation,
        "center_crop": list(prep.crop),
        "pad": "zeros where the resized frame is smaller",
        "mean": prep.mean.flatten().tolist(),
        "std": prep.std.flatten().tolist(),
        "layout": "NCHW float32, (x - mean) / std",
    }


def _describe_onnx(path: Path, manifest: dict[str, Any]) -> None:
    """Put the export's description into the ONNX file's metadata (``harkit``), atomically."""
    import onnx

    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {"harkit": json.dumps(manifest, sort_keys=True)})
    with atomic_output(path, suffix=".onnx") as tmp:
        onnx.save(graph, str(tmp))


def _run_file(path: Path, format: str, x: Tensor) -> list[np.ndarray]:
    """All outputs of an exported file on ``x``."""
    if format == "onnx":
        sess = _session(path)
        return list(sess.run(None, {sess.get_inputs()[0].name: x.numpy()}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.jit.load(str(path))(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def attach_onnx(model: SplitModel, folder: Path) -> SplitModel:
    """Run ``model``'s encoder branches and head with onnxruntime from an export folder."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ExportError(
            f"no ONNX export at {folder} (missing {MANIFEST}); run 'harkit export RUN "
            "--format onnx' first or pass the export folder"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not all(
            isinstance(b, dict) and "name" in b for b in manifest.get("branches", [])
        ):
            raise ValueError("not an export manifest")
    except (OSError, ValueError, TypeError) as exc:  # hand-edited, truncated or foreign file
        raise ExportError(
            f"{manifest_path} is unreadable ({' '.join(str(exc).split())}); export the run again"
        ) from None
    if manifest.get("format") != "onnx":
        raise ExportError(f"{folder} holds a '{manifest.get('format')}' export, not ONNX")
    if manifest.get("export_version") != EXPORT_VERSION:
        raise ExportError(
            f"{folder}: export version {manifest.get('export_version')} is not "
            f"supported (expects {EXPORT_VERSION}); export again"
        )
    names = [b.name for b in model.encoder.branches]
    exported = [b["name"] for b in manifest.get("branches", [])]
    if exported != names or manifest.get("classes") != model.classes:
        raise ExportError(
            f"{folder} was exported from a different run (branches {exported}, "
            f"expected {names}); export this run again"
        )
    exported_flow = manifest.get("flow")
    if model.flow is not None and isinstance(exported_flow, dict):
        now = model.flow.config.model_dump(mode="json")
        if any(exported_flow.get(k) != v for k, v in now.items()):
            log.warning(
                "%s was exported with flow %s; this run now computes flow %s",
                folder,
                {k: exported_flow.get(k) for k in now},
                now,
            )
    for branch, entry in zip(model.encoder.branches, manifest["branches"], strict=True):
        branch.runner = _onnx_runner(_session(folder / entry["file"]))
    head = _session(folder / manifest["head"]["file"])
    model.head_runner = _onnx_head_runner(head)
    return model


def _onnx_runner(sess):
    name = sess.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        return [torch.from_numpy(a) for a in sess.run(None, {name: x.float().numpy()})]

    return run


def _onnx_head_runner(sess):
    name = sess.get_inputs()[0].name

    def run(sequences, lengths) -> Tensor:
        # Full-length graph: clips of equal length share one call; others run apart.
        out: list[Tensor | None] = [None] * len(sequences)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(int(n), []).append(i)
        for n, rows in groups.items():
            x = torch.stack([sequences[i][:n] for i in rows]).float().numpy()
            logits = torch.from_numpy(sess.run(None, {name: x})[0])
            for j, i in enumerate(rows):
                out[i] = logits[j]
        return torch.stack(out)  # type: ignore[arg-type]

    return run
