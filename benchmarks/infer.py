"""Inference benchmark: streaming fps / latency, corehar in real time, incremental vs window
re-runs, and predict throughput.

(a) stream, light backbone (``--backbone``, default mobilenet_v3_large at 224, random weights)
    + GRU head, every frame through the CNN: sustained fps and per-frame latency p50/p95
    (fast path = the default encoder engine, onnxruntime on a CPU running fp32, vs the
    PyTorch fp32 reference);
(b) stream with the corehar recipe (ResNet152 + 3-layer BiLSTM, windowed, frame jump 4) on a
    30 fps source played in real time: dropped frames and decision latency p95;
(c) the GRU head alone: one incremental ``step`` vs re-running a 16-frame window, per frame;
(d) ``Recognizer.predict_many`` throughput (videos/s) on a folder of synthetic clips.

Weights are random ('none'): speed does not depend on them. On a shared CPU, compare ratios
rather than absolute numbers.

    python benchmarks/infer.py --out benchmarks/results/infer.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harkit.config import parse_config
from harkit.data.synthetic import SynthConfig, render_dataset, write_video
from harkit.infer.pipeline import split_model
from harkit.infer.recognizer import Recognizer
from harkit.infer.stream import FileSource, StreamConfig, run_stream
from harkit.models.builder import build_model
from harkit.models.recipe import Recipe, load_recipe
from harkit.precision import bf16_native


def light_recipe(backbone: str, frames: int = 16) -> Recipe:
    return parse_config(Recipe, {
        "name": f"bench-{backbone}-gru", "mode": "features",
        "input": {"sampling": {"strategy": "uniform", "num_frames": frames},
                  "features": [{"backbone": backbone, "weights": "none"}]},
        "head": {"type": "recurrent", "cell": "gru", "hidden": 256},
    }, source="benchmark")  # fmt: skip


def moving_clip(path: Path, frames: int, fps: float, size: tuple[int, int] = (240, 320)) -> Path:
    rng = np.random.default_rng(0)
    h, w = size
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    video = np.repeat(base[None], frames, axis=0)
    for t in range(frames):
        x = (7 * t) % (w - 48)
        video[t, 40:88, x : x + 48] = (255, (9 * t) % 255, 20)
    return write_video(path, video, fps=fps)


def bench_stream_light(tmp: Path, backbone: str, frames: int) -> dict:
    recipe = light_recipe(backbone)
    classes = [f"c{i}" for i in range(101)]
    head = build_model(recipe, len(classes))
    clip = moving_clip(tmp / "light.mp4", frames, 25)
    out = {}
    runs = (("fast", True, "auto"), ("fast_torch", True, "torch"),
            ("fp32_reference", False, "torch"))  # fmt: skip
    for label, fast, engine in runs:
        model = split_model(recipe, classes, head, fast=fast, engine=engine)
        warm = np.zeros((1, 240, 320, 3), np.uint8)
        for _ in range(2):
            model.encoder.encode(warm)
        # every frame through the CNN: the per-frame throughput this benchmark measures
        stats = run_stream(FileSource(clip), model, StreamConfig(reset="staggered", frame_jump=1))
        out[label] = {
            "fps": round(stats.fps, 2),
            "latency_ms_p50": round(stats.latency_ms_p50, 1),
            "latency_ms_p95": round(stats.latency_ms_p95, 1),
            "frames": stats.frames_read,
            "mode": stats.mode,
            "engine": model.encoder.extractor.engine,
        }
    out["fast_path"] = f"engine={out['fast']['engine']} (default 'auto')"
    out["fast_path_torch"] = (
        "channels_last" + (" + bf16 autocast" if bf16_native(torch.device("cpu")) else "")
        + " (bf16 skipped: no native bf16 on this CPU)" * (not bf16_native(torch.device("cpu")))
    )
    out["targets"] = {"fps": ">= 100", "latency_ms_p95": "< 20"}
    return out


def bench_corehar(tmp: Path, seconds: float) -> dict:
    recipe = load_recipe("corehar", ["network.encoder_weights=none"])
    classes = [f"c{i}" for i in range(101)]
    net = build_model(recipe, len(classes)).eval()
    model = split_model(recipe, classes, net, fast=True)
    model.encoder.encode(np.zeros((1, 240, 320, 3), np.uint8))  # warm-up
    clip = moving_clip(tmp / "corehar.mp4", int(seconds * 30), 30)
    stats = run_stream(FileSource(clip, realtime=True), model, StreamConfig(hop=4))
    cnn_frames_needed = stats.frames_read // stats.frame_jump
    return {
        "mode": stats.mode, "frame_jump": stats.frame_jump, "window": stats.window,
        "source_fps": stats.source_fps, "frames_read": stats.frames_read,
        "frames_through_cnn": stats.frames_encoded, "frames_dropped": stats.frames_dropped,
        "sampled_frames_needed": cnn_frames_needed,
        "kept_up": stats.frames_dropped == 0, "wall_s": round(stats.wall_s, 2),
        "decisions": stats.decisions,
        "decision_latency_ms_p50": round(stats.decision_latency_ms_p50, 1),
        "decision_latency_ms_p95": round(stats.decision_latency_ms_p95, 1),
        "cnn_ms_per_sampled_frame_p50": round(stats.latency_ms_p50, 1),
        "targets": {"kept_up": True, "decision_latency_ms_p95": "< 1000"},
    }  # fmt: skip


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
        "head": "GRU(256) -> linear(101)", "input_dim": dim, "window": window,
        "incremental_ms_per_frame": round(step_ms, 3),
        "window_rerun_ms_per_frame": round(window_ms, 3),
        "speedup": round(window_ms / step_ms, 2), "target_speedup": ">= 5",
    }  # fmt: skip


def bench_predict(tmp: Path, backbone: str, clips_per_class: int, batch_size: int) -> dict:
    config = SynthConfig(classes=["blink", "shake"], num_actors=2, clips_per_actor=clips_per_class,
                         test_actors=0, num_frames=32, size=112)
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
        "videos": len(videos), "frames_per_video": 8, "batch_size": batch_size,
        "seconds": round(wall, 2), "videos_per_s": round(len(videos) / wall, 2),
        "errors": sum(not p.ok for p in preds),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--backbone", default="mobilenet_v3_large")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--stream-frames", type=int, default=40)
    parser.add_argument("--corehar-seconds", type=float, default=4.0)
    parser.add_argument("--head-steps", type=int, default=200)
    parser.add_argument("--clips-per-class", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c", "d"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__, "bf16_native": bf16_native(torch.device("cpu"))},
    }  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "a" not in args.skip:
            results["a_stream_light"] = bench_stream_light(tmp, args.backbone, args.stream_frames)
            print("a", json.dumps(results["a_stream_light"]), flush=True)
        if "b" not in args.skip:
            results["b_stream_corehar"] = bench_corehar(tmp, args.corehar_seconds)
            print("b", json.dumps(results["b_stream_corehar"]), flush=True)
        if "c" not in args.skip:
            results["c_incremental_vs_window"] = bench_incremental(args.backbone, args.head_steps)
            print("c", json.dumps(results["c_incremental_vs_window"]), flush=True)
        if "d" not in args.skip:
            results["d_predict"] = bench_predict(tmp, args.backbone, args.clips_per_class,
                                                 args.batch_size)
            print("d", json.dumps(results["d_predict"]), flush=True)
    results["total_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
