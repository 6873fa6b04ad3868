"""Whole-job feature extraction against a naive loop and the compute-only ceiling, per backbone.

One process, per backbone, on generated UCF-like clips (H.264 mp4, 320x240, 25 fps, 7 s;
every 2nd frame goes through the network, as UCF101 extraction usually samples):

* naive: the tutorial loop. PyAV decodes each frame, torchvision transforms it on its own,
  the eager fp32 network runs on a batch of one.
* harkit: ``extract_features`` (what ``harkit extract`` runs) over the whole job, decoding
  included, with the settings it picks for a UCF101-sized job (``auto_compile``), into a
  float32 store so that the error below is the compute's own.
* ceiling: the same network under the same precision rule (bf16 where the CPU has it
  natively, else fp32), ``torch.compile``-d, channels_last, at the best batch size, on
  clips decoded and preprocessed beforehand: what the hardware gives with nothing else to do.

Also: ``fp32_max_rel_err``, the largest ||harkit - fp32|| / ||fp32|| over the frames (the
reference: eager fp32 on the same preprocessed frames), and the CPU (flags, native bf16).
Random weights (speed does not depend on them), except EfficientNet-Lite0 whose ImageNet
weights ship with it. The ceiling compiles first, so the job finds inductor's cache warm, as
every run after a machine's first does; ``ceiling.first_call_s`` is that cold compile.

    python benchmarks/extract.py --out benchmarks/results/extract.json
    HARKIT_PRECISION=fp32 python benchmarks/extract.py --backbones googlenet  # a CPU without bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harkit.backbones import create_backbone, get_backbone_spec
from harkit.data.clips import load_clip
from harkit.data.datasets import VideoIndex, VideoItem
from harkit.data.sampling import SamplingConfig
from harkit.data.synthetic import write_video
from harkit.features import extract_features, feature_stores_for
from harkit.features.extractor import FeatureExtractor, sources_precision
from harkit.features.pipeline import COMPILE_MIN_VIDEOS, auto_compile
from harkit.models.recipe import FeatureSource
from harkit.precision import bf16_native

BACKBONES = ("googlenet", "resnet152", "inception_resnet_v2", "efficientnet_lite0")
#: Real weights where they ship offline; the others are random (same speed).
WEIGHTS = {"efficientnet_lite0": "imagenet"}
FPS, SECONDS, HEIGHT, WIDTH, STRIDE = 25, 7, 240, 320, 2
CPU = torch.device("cpu")
#: ``--variants``: the harkit job with one setting changed, to see what each lever is worth.
VARIANTS: dict[str, dict[str, Any]] = {
    "eager": {"compile": False},
    "workers0": {"workers": 0},
    "workers2": {"workers": 2},
    "batch8": {"batch": 8},
}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (decode workers). On a shared
    machine wall time follows the neighbours; CPU time per frame stays what the work costs."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def ucf_like(seed: int, num_frames: int) -> np.ndarray:
    """A textured scene panning slowly with a moving blob and sensor noise: H.264 has to code
    motion and texture in every frame, as in real clips (a flat synthetic clip decodes faster)."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (HEIGHT // 8 + 1, (WIDTH + 2 * num_frames) // 8 + 1, 3), np.uint8)
    scene = np.kron(scene, np.ones((8, 8, 1), np.uint8))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(num_frames):
        frame = scene[:HEIGHT, 2 * t : 2 * t + WIDTH].copy()
        cx, cy = 40 + (3 * t) % (WIDTH - 80), HEIGHT / 2 + 50 * math.sin(t / 9)
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < 30**2] = (200, 60 + t % 120, 40)
        noise = rng.integers(-6, 7, frame.shape, dtype=np.int16)
        frames[t] = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frames


def make_clips(root: Path, count: int) -> VideoIndex:
    items = []
    for i in range(count):
        label = f"class{i % 2}"
        path = root / label / f"v_{label}_g{i + 1:02d}_c01.mp4"
        write_video(path, ucf_like(i, FPS * SECONDS), fps=FPS)
        items.append(VideoItem(path, label, f"g{i + 1:02d}"))
    return VideoIndex("ucf-like", items, ["class0", "class1"])


def cpu_info() -> dict[str, Any]:
    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    return {
        "processor": platform.processor() or platform.machine(),
        "flags": [f for f in wanted if f in flags],
        "bf16_native": bf16_native(CPU),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "python": platform.python_version(),
    }


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def naive(name: str, weights: str, paths: list[Path]) -> dict[str, Any]:
    """Decode with PyAV, transform each frame, eager fp32 at batch 1."""
    import av
    from torchvision import transforms

    spec = get_backbone_spec(name)
    net = create_backbone(name, weights).eval()
    prep = transforms.Compose([
        transforms.Resize(spec.input_size), transforms.CenterCrop(spec.input_size),
        transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std),
    ])  # fmt: skip
    frames = 0
    start, cpu = time.perf_counter(), cpu_seconds()
    with torch.no_grad():
        for path in paths:
            with av.open(str(path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i % STRIDE == 0:
                        net(prep(frame.to_image()).unsqueeze(0))
                        frames += 1
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds, "cpu_s": cpu,
            "frames_per_cpu_s": frames / cpu}  # fmt: skip


def prepared(source: FeatureSource, index: VideoIndex, sampling: SamplingConfig) -> torch.Tensor:
    """Every sampled frame of the job, decoded and preprocessed by harkit: ``(N, 3, S, S)``."""
    extractor = FeatureExtractor([source], precision="fp32", engine="torch")
    key = extractor.groups[0].prep_key
    clips = [extractor.preprocessor(load_clip(item.path, sampling)[0])[key] for item in index]
    return torch.cat(clips)


def reference(source: FeatureSource, x: torch.Tensor) -> torch.Tensor:
    """Eager fp32 features of ``x``: what every fast path is held against."""
    extractor = FeatureExtractor([source], precision="fp32", engine="torch", chunk_size=16)
    return extractor.run({extractor.groups[0].prep_key: x})[extractor.keys[0]]


def ceiling(source: FeatureSource, x: torch.Tensor, batches: list[int], frames: int) -> dict:
    """Compiled + channels_last network on ready tensors, best of ``batches`` (median of 3
    timed passes over ``frames`` frames each, after a warm-up pass). It is harkit's own
    compiled network (with its check against fp32, which refuses a miscompiled graph) with
    nothing around it."""
    x = x[:frames]
    out: dict[str, Any] = {"by_batch": {}, "first_call_s": {}}
    for batch in batches:
        torch._dynamo.reset()  # each batch size compiles its own graph, from scratch
        extractor = FeatureExtractor([source], engine="torch", compile=True, chunk_size=batch)
        key = extractor.groups[0].prep_key
        chunks = [{key: x[i : i + batch]} for i in range(0, len(x) - batch + 1, batch)]
        start = time.perf_counter()
        extractor.run_groups(chunks[0])
        out["first_call_s"][batch] = time.perf_counter() - start
        for chunk in chunks:  # warm-up pass
            extractor.run_groups(chunk)
        times, cpus = [], []
        for _ in range(3):
            start, cpu = time.perf_counter(), cpu_seconds()
            for chunk in chunks:
                extractor.run_groups(chunk)
            times.append(time.perf_counter() - start)
            cpus.append(cpu_seconds() - cpu)
        out["by_batch"][batch] = len(chunks) * batch / statistics.median(times)
        out.setdefault("frames_per_cpu_s", {})[batch] = (
            len(chunks) * batch / statistics.median(cpus)
        )
        out["precision"] = extractor.precision
        out["compile_check"] = extractor.compile_check
        out["frozen"] = bool(extractor.describe()["frozen"])
    out["batch"] = max(out["by_batch"], key=out["by_batch"].get)
    out["fps"] = out["by_batch"][out["batch"]]
    out["best_frames_per_cpu_s"] = max(out["frames_per_cpu_s"].values())
    return out


def whole_job(
    source: FeatureSource,
    index: VideoIndex,
    sampling: SamplingConfig,
    work: Path,
    *,
    workers: int,
    batch: int,
    compile: bool,
) -> tuple[dict[str, Any], torch.Tensor]:
    """``extract_features`` over the job into a fresh float32 store; its features in order."""
    store_root = work / f"store-{time.monotonic_ns()}"
    start, cpu = time.perf_counter(), cpu_seconds()
    report = extract_features(
        index, [source], store_root, sampling, dtype="float32", batch_size=batch,
        num_workers=workers, compile=compile, progress=False,
    )  # fmt: skip
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    (location,) = feature_stores_for([source], sampling, None, store_root, dtype="float32")
    store = location.open()
    feats = [torch.from_numpy(store.load_row(store.find_path(item.path))) for item in index]
    result = {
        "frames": report.steps,
        "seconds": seconds,
        "fps": report.steps / seconds,
        "cpu_s": cpu,
        "frames_per_cpu_s": report.steps / cpu,
        "extractor": report.extractor,
        "workers": workers,
    }
    return result, torch.cat(feats).float()


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm(dim=1) / want.norm(dim=1).clamp_min(1e-12)).max().item()


def bench_backbone(
    name: str, index: VideoIndex, sampling: SamplingConfig, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    source = FeatureSource(backbone=name, weights=WEIGHTS.get(name, "none"))
    precision = sources_precision([source], "auto", CPU)
    compile = (
        auto_compile(COMPILE_MIN_VIDEOS, [source], CPU) if args.compile is None else args.compile
    )
    log(f"[{name}] preparing frames")
    x = prepared(source, index, sampling)
    ref = reference(source, x)
    log(f"[{name}] ceiling ({precision}, batches {args.ceiling_batches})")
    top = ceiling(source, x, args.ceiling_batches, min(len(x), args.ceiling_frames))
    log(f"[{name}] harkit whole job (compile={compile}, workers={args.workers})")
    runs = []
    for _ in range(args.repeat):
        job, feats = whole_job(
            source, index, sampling, work, workers=args.workers, batch=args.batch, compile=compile
        )
        runs.append(job)
    job = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]  # the median run
    variants = {}
    for variant in filter(None, args.variants.split(",")):
        options = {"workers": args.workers, "batch": args.batch, "compile": compile}
        options.update(VARIANTS[variant])
        log(f"[{name}] variant {variant}: {options}")
        run, _ = whole_job(source, index, sampling, work, **options)
        variants[variant] = {**options, "fps": run["fps"], "vs_harkit": run["fps"] / job["fps"]}
    log(f"[{name}] naive loop over {args.naive_clips} clip(s)")
    slow = naive(name, source.weights, [item.path for item in index][: args.naive_clips])
    result = {
        "weights": source.weights,
        "precision": precision,
        "frames": len(x),
        "naive": slow,
        "harkit": job,
        "harkit_runs_fps": [r["fps"] for r in runs],
        "ceiling": top,
        "speedup_vs_naive": job["fps"] / slow["fps"],
        "fraction_of_ceiling": job["fps"] / top["fps"],
        "ceiling_vs_naive": top["fps"] / slow["fps"],
        "fp32_max_rel_err": max_rel_err(feats, ref),
        # the same ratios in frames per CPU second: what they are on an idle machine whose
        # cores all work (both jobs keep every core busy), however loaded this one was
        "cpu_speedup_vs_naive": job["frames_per_cpu_s"] / slow["frames_per_cpu_s"],
        "cpu_fraction_of_ceiling": job["frames_per_cpu_s"] / top["best_frames_per_cpu_s"],
        "variants": variants,
    }
    log(
        f"[{name}] naive {slow['fps']:.1f} f/s | harkit {job['fps']:.1f} f/s "
        f"({result['speedup_vs_naive']:.2f}x naive, {result['fraction_of_ceiling']:.0%} of "
        f"ceiling) | ceiling {top['fps']:.1f} f/s (batch {top['batch']}) | "
        f"fp32 max rel err {result['fp32_max_rel_err']:.2e} | per CPU second: "
        f"{result['cpu_speedup_vs_naive']:.2f}x naive, {result['cpu_fraction_of_ceiling']:.0%} "
        "of ceiling"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated")
    parser.add_argument(
        "--frames", type=int, default=704, help="frames through the network (88 per clip)"
    )
    parser.add_argument("--workers", type=int, default=1, help="harkit decode workers")
    parser.add_argument("--batch", type=int, default=32, help="harkit frames per network call")
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None,
        help="harkit torch.compile (default: what it picks for a UCF101-sized job)",
    )  # fmt: skip
    parser.add_argument("--ceiling-batches", default="8,32", help="comma-separated")
    parser.add_argument("--ceiling-frames", type=int, default=256, help="frames per timed pass")
    parser.add_argument("--naive-clips", type=int, default=2, help="clips the naive loop reads")
    parser.add_argument("--repeat", type=int, default=1, help="harkit whole-job runs (median)")
    parser.add_argument("--variants", default="", help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    args.ceiling_batches = [int(b) for b in args.ceiling_batches.split(",")]
    per_clip = len(range(0, FPS * SECONDS, STRIDE))
    clips = max(1, math.ceil(args.frames / per_clip))
    args.naive_clips = min(args.naive_clips, clips)
    start = time.perf_counter()
    job = {"clips": clips, "size": [WIDTH, HEIGHT], "fps": FPS, "seconds": SECONDS}
    job.update(stride=STRIDE, frames=clips * per_clip)
    results: dict[str, Any] = {
        "machine": cpu_info(),
        "job": job,
        "targets": {"speedup_vs_naive": 4.0, "fraction_of_ceiling": 0.8},
        "backbones": {},
    }
    sampling = SamplingConfig(strategy="stride", stride=STRIDE)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log(f"writing {clips} clips")
        index = make_clips(work / "videos", clips)
        for name in args.backbones.split(","):
            results["backbones"][name] = bench_backbone(name, index, sampling, work, args)
    results["seconds"] = time.perf_counter() - start
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
