"""Inference benchmark: streaming fps / latency, corehar in real time, incremental vs window
re-runs, and predict throughput.

(a) stream, light backbones (``--backbones``, default EfficientNet-Lite0 and MobileNetV3-L at
    224, random weights) + GRU head, every frame through the CNN, ``--stream-frames`` (500)
    frames of a 320x240 file. Three numbers per backbone, in one run:
    * ``naive``: eager fp32 PyTorch, batch 1, per frame (``fast=False``, engine ``torch``);
    * ``stream``: ``run_stream``'s real path (decode, preprocess, CNN, GRU step, smoothing)
      with the default stream engine (:mod:`harkit.infer.engine`: measured per CPU, into a
      fresh engine cache, so ``engine_build_s`` includes the probe): fps, latency p50/p95;
    * ``fixed_rule``: the same stream with ``--engine onnx``, what ``auto`` was before it was
      measured (ORT fp32 on every CPU), in the same alternating runs;
    * ``ceiling``: the backbone alone, batch 1, on pre-decoded preprocessed tensors (the
      stream engine's ORT session; ``--ceiling-compile`` adds torch.compile + bf16 autocast
      where bf16 is native, slow to compile on 2 cores).
    Beside the speed: the engine's feature error vs fp32 on probe frames, and the stream's
    per-decision probability error and top-1 agreement against the naive run (same frames).
    Runs alternate naive / stream ``--repeats`` times (medians reported): the CPU is shared.
(b) corehar (ResNet152 + 3-layer BiLSTM, windowed, frame jump 4) on a 30 fps source played in
    real time, per ``--corehar-engines`` (default ``auto`` = ORT fp32 and ``int8`` = ORT
    static int8, calibrated on other frames of the clip): dropped frames, decision latency p95,
    and int8's accuracy against fp32 (features, window probabilities, top-1 agreement).
(c) the GRU head alone: one incremental ``step`` vs re-running a 16-frame window, per frame;
(d) ``Recognizer.predict_many`` throughput (videos/s) on a folder of synthetic clips.

``HARKIT_PRECISION=fp32`` emulates a CPU without native bf16 (the JSON records what ran).
Weights are random ('none'): speed does not depend on them. On a shared CPU, compare ratios
within one run rather than absolute numbers across runs.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/infer.py --out benchmarks/results/infer.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harkit.config import parse_config
from harkit.engine_choice import ChoiceCache
from harkit.infer.engine import ProbeSettings, StreamEngine, stream_engine
from harkit.infer.pipeline import SplitModel, split_model
from harkit.infer.quantize import compare_outputs
from harkit.infer.recognizer import Recognizer
from harkit.infer.sources import FileSource
from harkit.infer.stream import StreamStats, run_stream
from harkit.infer.stream_plan import StreamConfig
from harkit.models.builder import build_model
from harkit.models.recipe import Recipe, load_recipe
from harkit.precision import bf16_native, resolve_precision
from harkit.synth import SynthConfig, render_dataset, write_video


def light_recipe(backbone: str, frames: int = 16) -> Recipe:
    return parse_config(
        Recipe,
        {
            "name": f"bench-{backbone}-gru",
            "mode": "features",
            "input": {
                "sampling": {"strategy": "uniform", "num_frames": frames},
                "features": [{"backbone": backbone, "weights": "none"}],
            },
            "head": {"type": "recurrent", "cell": "gru", "hidden": 256},
        },
        source="benchmark",
    )


def moving_clip(path: Path, frames: int, fps: float, size: tuple[int, int] = (240, 320)) -> Path:
    rng = np.random.default_rng(0)
    h, w = size
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    video = np.repeat(base[None], frames, axis=0)
    for t in range(frames):
        x = (7 * t) % (w - 48)
        video[t, 40:88, x : x + 48] = (255, (9 * t) % 255, 20)
    return write_video(path, video, fps=fps)


def _stream(clip: Path, model: SplitModel, config: StreamConfig) -> tuple[StreamStats, dict]:
    """One stream run; also the probabilities of every decision, by frame index."""
    probs: dict[int, np.ndarray] = {}

    def keep(decision) -> None:
        probs[decision.frame] = decision.probs

    cpu = time.process_time()
    stats = run_stream(FileSource(clip), model, config, on_decision=keep)
    # CPU seconds of this process per frame: less sensitive than wall time to other jobs on a
    # shared machine (frames / CPU s is the fps one core would sustain if nothing waited)
    stats.cpu_ms_per_frame = (time.process_time() - cpu) * 1000 / max(1, stats.frames_read)  # type: ignore[attr-defined]
    return stats, probs


def _prob_error(reference: dict, other: dict) -> dict:
    frames = sorted(set(reference) & set(other))
    ref = np.stack([reference[f] for f in frames])
    out = np.stack([other[f] for f in frames])
    return {
        "decisions": len(frames),
        "prob_max_abs_error": float(np.abs(ref - out).max()),
        "top1_agreement": compare_outputs(ref, out)["top1_agreement"],
    }


def _ceiling_ort(engine: StreamEngine, frames: list[np.ndarray]) -> float:
    runner = engine.runners[0]
    prep = engine.preps[runner.branch.prep_key]
    inputs = [prep(f).clone() for f in frames]  # pre-decoded, preprocessed
    for x in inputs[:5]:
        runner.call(x)
    start = time.perf_counter()
    for x in inputs:
        runner.call(x)
    return len(inputs) / (time.perf_counter() - start)


def _ceiling_compile(model: SplitModel, frames: list[np.ndarray]) -> dict:
    """torch.compile (no freezing: it gave wrong Inception-ResNet-V2 features) of the
    channels-last backbone, bf16 autocast only where bf16 is native."""
    branch = model.encoder.branches[0]
    transform = model.encoder.extractor.preprocessor._transforms[branch.prep_key]
    inputs = [transform(f[None]).contiguous(memory_format=torch.channels_last) for f in frames]
    net = branch.module.to(memory_format=torch.channels_last)
    bf16 = (
        bf16_native(torch.device("cpu"))
        and resolve_precision("auto", torch.device("cpu")) == "bf16"
    )
    compiled = torch.compile(net, dynamic=False)
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        ref = [net(x)[0].float() for x in inputs[:4]]
        out = [compiled(x)[0].float() for x in inputs[:4]]
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        for x in inputs:
            compiled(x)
        fps = len(inputs) / (time.perf_counter() - start)
    with torch.no_grad():
        fp32 = torch.cat([net(x)[0] for x in inputs[:4]])
    del ref
    err = compare_outputs(fp32.numpy(), torch.cat(out).numpy())["max_rel_error"]
    return {
        "fps": round(fps, 1),
        "bf16": bf16,
        "compile_s": round(compile_s, 1),
        "feature_max_rel_error_vs_fp32": err,
    }


def bench_stream_light(
    tmp: Path,
    backbone: str,
    frames: int,
    repeats: int,
    ceiling_compile: bool,
    probe_compile: bool = False,
) -> dict:
    recipe = light_recipe(backbone)
    classes = [f"c{i}" for i in range(101)]
    torch.manual_seed(0)  # the same random head in every run: comparable errors
    head = build_model(recipe, len(classes))
    clip = moving_clip(tmp / f"{backbone}.mp4", frames, 25)
    decoded = [f.image for f in FileSource(clip).frames()]
    naive = split_model(recipe, classes, head, fast=False, engine="torch")
    fast = split_model(recipe, classes, head, fast=True)
    start = time.perf_counter()
    # built (measured, exported, checked) before the clock starts; a fresh engine cache, so
    # the probe runs as on a new machine
    probe = ProbeSettings(compile=probe_compile, cache=ChoiceCache(tmp / f"engines-{backbone}"))
    engine = stream_engine(fast, probe=probe)
    build_s = time.perf_counter() - start
    fixed = stream_engine(fast, "onnx")  # the fixed rule's engine, for the before/after
    warm = np.zeros((1, 240, 320, 3), np.uint8)
    for _ in range(3):
        naive.encoder.encode(warm)
        (engine or fast.encoder).encode(warm)
        if fixed is not None:
            fixed.encode(warm)
    # every frame through the CNN: the per-frame throughput this benchmark measures
    config = StreamConfig(reset="staggered", frame_jump=1)
    configs = {
        "naive": config,
        "stream": config,
        "fixed_rule": StreamConfig(reset="staggered", frame_jump=1, engine="onnx"),
    }
    runs: dict[str, list[dict]] = {"naive": [], "stream": [], "fixed_rule": []}
    probs: dict[str, dict] = {}
    for r in range(repeats):
        order = (("naive", naive), ("stream", fast), ("fixed_rule", fast))
        for label, model in order[r % 3 :] + order[: r % 3]:
            stats, probs[label] = _stream(clip, model, configs[label])
            runs[label].append(
                {
                    "fps": stats.fps,
                    "p50": stats.latency_ms_p50,
                    "p95": stats.latency_ms_p95,
                    "frames": stats.frames_read,
                    "cpu_ms_per_frame": stats.cpu_ms_per_frame,  # type: ignore[attr-defined]
                }
            )

    def med(label: str, key: str) -> float:
        return round(statistics.median(run[key] for run in runs[label]), 1)

    out: dict = {
        "frames": frames,
        "repeats": repeats,
        "naive": {
            "fps": med("naive", "fps"),
            "latency_ms_p50": med("naive", "p50"),
            "latency_ms_p95": med("naive", "p95"),
            "cpu_ms_per_frame": med("naive", "cpu_ms_per_frame"),
            "path": "eager fp32 PyTorch, batch 1",
        },
        "stream": {
            "fps": med("stream", "fps"),
            "latency_ms_p50": med("stream", "p50"),
            "latency_ms_p95": med("stream", "p95"),
            "cpu_ms_per_frame": med("stream", "cpu_ms_per_frame"),
            "engine": engine.describe()
            if engine
            else {"engine": "torch", "precision": fast.encoder.precision},
            "engine_build_s": round(build_s, 1),
            "vs_naive": _prob_error(probs["naive"], probs["stream"]),
        },
        "fixed_rule": {
            "fps": med("fixed_rule", "fps"),
            "latency_ms_p50": med("fixed_rule", "p50"),
            "latency_ms_p95": med("fixed_rule", "p95"),
            "cpu_ms_per_frame": med("fixed_rule", "cpu_ms_per_frame"),
            "engine": "onnx (--engine onnx: the rule before the probe)",
        },
        "runs": runs,
    }
    if engine is not None:
        out["ceiling"] = {
            "ort_fps": round(_ceiling_ort(engine, decoded), 1),
            "path": "backbone alone, ORT fp32, batch 1, pre-decoded tensors",
        }
    if ceiling_compile:
        out.setdefault("ceiling", {})["compile"] = _ceiling_compile(fast, decoded[:200])
    out["targets"] = {"fps": ">= 100", "latency_ms_p95": "< 20"}
    return out


def _window_probs(model: SplitModel, feats: torch.Tensor, window: int, hop: int) -> np.ndarray:
    rows = []
    for end in range(window, len(feats) + 1, hop):
        logits = model.head_logits(feats[end - window : end][None])[0]
        rows.append(torch.softmax(logits, -1).numpy())
    return np.stack(rows)


def bench_corehar(tmp: Path, seconds: float, engines: list[str]) -> dict:
    recipe = load_recipe("corehar", ["network.encoder_weights=none"])
    classes = [f"c{i}" for i in range(101)]
    torch.manual_seed(0)  # the same random head in every run: comparable errors
    net = build_model(recipe, len(classes)).eval()
    model = split_model(recipe, classes, net, fast=True)
    clip = moving_clip(tmp / "corehar.mp4", int(seconds * 30) + 128, 30)
    decoded = [f.image for f in FileSource(clip).frames()]
    calibration = np.stack(decoded[:128:8])  # 16 frames that the accuracy check does not use
    evaluation = np.stack(decoded[128::4][:64])  # frame jump 4, as streamed
    out: dict = {"precision": model.encoder.precision, "engines": {}}
    feats: dict[str, torch.Tensor] = {}
    for name in engines:
        start = time.perf_counter()
        engine = stream_engine(model, name, calibration=calibration)  # type: ignore[arg-type]
        build_s = time.perf_counter() - start
        encode = engine.encode if engine is not None else model.encoder.encode
        encode(decoded[0][None])  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        feats[name] = torch.cat([encode(f[None]) for f in evaluation])
        wall = (time.perf_counter() - wall) * 1000 / len(evaluation)
        cpu = (time.process_time() - cpu) * 1000 / len(evaluation)
        stats = run_stream(FileSource(clip, realtime=True), model, StreamConfig(hop=4, engine=name))  # type: ignore[arg-type]
        out["engines"][name] = {
            "engine": engine.describe() if engine else {"engine": "torch"},
            "build_s": round(build_s, 1),
            "mode": stats.mode,
            "frame_jump": stats.frame_jump,
            "window": stats.window,
            "source_fps": stats.source_fps,
            "frames_read": stats.frames_read,
            "frames_through_cnn": stats.frames_encoded,
            "frames_dropped": stats.frames_dropped,
            "sampled_frames_needed": -(-stats.frames_read // stats.frame_jump),
            "kept_up": stats.frames_dropped == 0,
            "wall_s": round(stats.wall_s, 2),
            "decisions": stats.decisions,
            "decision_latency_ms_p50": round(stats.decision_latency_ms_p50, 1),
            "decision_latency_ms_p95": round(stats.decision_latency_ms_p95, 1),
            "cnn_ms_per_sampled_frame_p50": round(stats.latency_ms_p50, 1),
            # the CNN alone on the same frames, outside the real-time loop: wall and CPU ms
            # (CPU / threads estimates the wall time on an otherwise idle CPU)
            "encode_wall_ms": round(wall, 1),
            "encode_cpu_ms": round(cpu, 1),
            "budget_ms_per_sampled_frame": round(1000 * stats.frame_jump / stats.source_fps, 1),
        }
    base = next((n for n in engines if n != "int8"), None)
    if base is not None and "int8" in feats:
        window = out["engines"]["int8"]["window"]
        ref = _window_probs(model, feats[base], window, 4)
        q = _window_probs(model, feats["int8"], window, 4)
        out["int8_vs_fp32"] = {
            "frames": len(evaluation),
            "windows": len(ref),
            "features": compare_outputs(feats[base].numpy(), feats["int8"].numpy()),
            "window_prob_max_abs_error": float(np.abs(ref - q).max()),
            "window_top1_agreement": compare_outputs(ref, q)["top1_agreement"],
        }
    out["targets"] = {"kept_up": True, "decision_latency_ms_p95": "< 1000"}
    return out


def bench_incremental(backbone: str, steps: int, window: int = 16) -> dict:
    from harkit.backbones import get_backbone_spec

    recipe = light_recipe(backbone)
    head = build_model(recipe, 101).eval()
    dim = get_backbone_spec(backbone).feature_dim
    x = torch.randn(1, steps + window, dim)
    with torch.no_grad():
        state = head.init_state(1)
        for t in range(window):  # warm-up
            _, state = head.step(x[:, t], state)
        start = time.perf_counter()
        for t in range(window, window + steps):
            _, state = head.step(x[:, t], state)
        step_ms = (time.perf_counter() - start) * 1000 / steps
        start = time.perf_counter()
        for t in range(window, window + steps):
            head(x[:, t - window + 1 : t + 1])
        window_ms = (time.perf_counter() - start) * 1000 / steps
    return {
        "head": "GRU(256) -> linear(101)",
        "input_dim": dim,
        "window": window,
        "incremental_ms_per_frame": round(step_ms, 3),
        "window_rerun_ms_per_frame": round(window_ms, 3),
        "speedup": round(window_ms / step_ms, 2),
        "target_speedup": ">= 5",
    }


def bench_predict(tmp: Path, backbone: str, clips_per_class: int, batch_size: int) -> dict:
    config = SynthConfig(
        classes=["blink", "shake"],
        num_actors=2,
        clips_per_actor=clips_per_class,
        test_actors=0,
        num_frames=32,
        size=112,
    )
    root = render_dataset(tmp / "synth", config).parent
    videos = sorted(root.rglob("*.mp4"))
    recipe = light_recipe(backbone, frames=8)
    classes = list(config.class_names)
    model = split_model(recipe, classes, build_model(recipe, len(classes)))
    rec = Recognizer(model)
    rec.predict(videos[0])  # warm-up
    start = time.perf_counter()
    preds = list(rec.predict_many(videos, batch_size=batch_size))
    wall = time.perf_counter() - start
    return {
        "videos": len(videos),
        "frames_per_video": 8,
        "batch_size": batch_size,
        "seconds": round(wall, 2),
        "videos_per_s": round(len(videos) / wall, 2),
        "errors": sum(not p.ok for p in preds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--backbone", default="mobilenet_v3_large", help="(c) and (d)")
    parser.add_argument(
        "--backbones", nargs="+", default=["efficientnet_lite0", "mobilenet_v3_large"], help="(a)"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ceiling-compile", action="store_true")
    parser.add_argument(
        "--probe-compile",
        action="store_true",
        help="(a) the stream probe also tries compiled PyTorch (ProbeSettings(compile=True))",
    )
    parser.add_argument("--corehar-engines", nargs="+", default=["auto", "int8"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--stream-frames", type=int, default=500)
    parser.add_argument("--corehar-seconds", type=float, default=10.0)
    parser.add_argument("--head-steps", type=int, default=200)
    parser.add_argument("--clips-per-class", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c", "d"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "bf16_native": bf16_native(torch.device("cpu")),
            "precision": resolve_precision("auto", torch.device("cpu")),
            "HARKIT_PRECISION": os.environ.get("HARKIT_PRECISION"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "a" not in args.skip:
            results["a_stream_light"] = {}
            for backbone in args.backbones:
                row = bench_stream_light(
                    tmp,
                    backbone,
                    args.stream_frames,
                    args.repeats,
                    args.ceiling_compile,
                    args.probe_compile,
                )
                results["a_stream_light"][backbone] = row
                print("a", backbone, json.dumps(row), flush=True)
        if "b" not in args.skip:
            results["b_stream_corehar"] = bench_corehar(
                tmp, args.corehar_seconds, args.corehar_engines
            )
            print("b", json.dumps(results["b_stream_corehar"]), flush=True)
        if "c" not in args.skip:
            results["c_incremental_vs_window"] = bench_incremental(args.backbone, args.head_steps)
            print("c", json.dumps(results["c_incremental_vs_window"]), flush=True)
        if "d" not in args.skip:
            results["d_predict"] = bench_predict(
                tmp, args.backbone, args.clips_per_class, args.batch_size
            )
            print("d", json.dumps(results["d_predict"]), flush=True)
    results["total_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
