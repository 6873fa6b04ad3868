"""Feature extraction benchmark: naive loop vs harkit, roofline, end to end, cached epochs.

* naive: per-frame eager fp32 NCHW batch-1 loop; harkit: `FeatureExtractor` batched, with
  its default engine (``harkit_auto``: onnxruntime on a CPU running fp32), the PyTorch engine
  (``harkit_torch``: channels_last + autocast where the CPU has native bf16, else fp32) and
  onnxruntime forced (``harkit_onnx``), optional torch.compile; all on already-preprocessed
  frames, for GoogLeNet and ResNet152 (random weights: speed only). harkit's figure is
  ``harkit_auto``. The first (warm-up) ORT run exports the graph to the harkit cache.
* roofline: model GFLOPs/frame (FlopCounterMode) x frames/s over the measured matmul peak
  (bf16 as asked, and fp32, since a CPU without native bf16 runs its fast path in fp32).
* end to end: `extract_features` on 320x240 H.264 videos (decode in a worker) vs the
  compute-only frames/s of the same extractor.
* epoch: one epoch of a GRU head reading the store vs re-running the backbone on decoded clips.

    python benchmarks/extract.py --out benchmarks/results/extract.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from harkit.backbones import create_backbone, get_backbone_spec
from harkit.data.clips import ClipDataset, collate_clips
from harkit.data.datasets import VideoIndex, VideoItem
from harkit.data.sampling import SamplingConfig
from harkit.data.synthetic import render_clip, write_video
from harkit.data.transforms import ClipTransform, TransformConfig
from harkit.features import FeatureDataset, FeatureExtractor, extract_features, feature_stores_for
from harkit.models.recipe import FeatureSource


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(dtype: torch.dtype, n: int = 1024) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    seconds = timed(lambda: torch.matmul(a, b), repeat=2)
    return 2 * n**3 / seconds / 1e9


def gflops_per_frame(name: str) -> float:
    net = create_backbone(name, "none")
    size = get_backbone_spec(name).input_size
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def model_speed(name: str, frames: int, peaks: dict[str, float], compile: bool) -> dict:
    spec = get_backbone_spec(name)
    x = torch.randn(frames, 3, spec.input_size, spec.input_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        naive_net = create_backbone(name, "none").eval()

    @torch.inference_mode()
    def naive() -> None:
        for i in range(frames):
            naive_net(x[i : i + 1])

    naive()  # warm-up (first-call allocations)
    naive_s = timed(naive)
    source = FeatureSource(backbone=name, weights="none")
    result: dict = {"frames": frames, "naive_fps": frames / naive_s}
    gflops = gflops_per_frame(name)
    result["gflops_per_frame"] = gflops
    variants: dict[str, dict] = {
        "harkit_auto": {"precision": "auto"},
        "harkit_torch": {"precision": "auto", "engine": "torch"},
        "harkit_onnx": {"engine": "onnx"},
    }
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():  # emulated bf16 is far slower: skip
        variants["harkit_bf16"] = {"precision": "bf16", "engine": "torch"}
    if compile:
        variants["harkit_auto_compile"] = {"precision": "auto", "compile": True}
    for label, options in variants.items():
        extractor = FeatureExtractor([source], chunk_size=frames, **options)
        inputs = {extractor.groups[0].prep_key: x}
        extractor.run(inputs)  # warm-up (and compilation)
        fps = frames / timed(lambda e=extractor, i=inputs: e.run(i))
        result[label] = {
            "precision": extractor.precision,
            "engine": extractor.engine,
            "fps": fps,
            "speedup_vs_naive": fps / result["naive_fps"],
            "achieved_gflops": fps * gflops,
            "roofline_fraction_bf16_peak": fps * gflops / peaks["bf16"],
            "roofline_fraction_fp32_peak": fps * gflops / peaks["fp32"],
        }
    return result


def make_videos(root: Path, count: int, num_frames: int) -> VideoIndex:
    items = []
    for i in range(count):
        label = ("blink", "shake")[i % 2]
        frames = render_clip(label, i + 1, 1)[:num_frames]
        big = np.stack([cv2.resize(f, (320, 240)) for f in frames])  # 320x240
        path = write_video(root / label / f"{label}_a{i + 1:02d}_c01.mp4", big, fps=25)
        items.append(VideoItem(path, label, f"a{i + 1:02d}"))
    return VideoIndex("bench", items, ["blink", "shake"])


def end_to_end(work: Path, index: VideoIndex, sampling: SamplingConfig) -> dict:
    source = FeatureSource(backbone="googlenet", weights="none")
    frames_total = len(index) * sampling.num_frames
    # compute-only: the same extractor on already decoded + preprocessed clips
    extractor = FeatureExtractor([source], chunk_size=32)
    transform = ClipTransform(TransformConfig(), 224, (0.5,) * 3, (0.5,) * 3)
    clips = [transform(np.zeros((sampling.num_frames, 240, 320, 3), np.uint8))] * len(index)
    key = extractor.groups[0].prep_key
    extractor.run({key: clips[0]})
    compute_s = timed(lambda: [extractor.run({key: c}) for c in clips])
    report = extract_features(
        index, [source], work / "store", sampling, num_workers=1, batch_size=32, progress=False
    )
    e2e_fps = frames_total / report.seconds
    compute_fps = frames_total / compute_s
    return {
        "videos": len(index),
        "frames": frames_total,
        "compute_only_fps": compute_fps,
        "end_to_end_fps": e2e_fps,
        "end_to_end_fraction": e2e_fps / compute_fps,
        "target_fraction": 0.85,
    }


def epochs(work: Path, index: VideoIndex, sampling: SamplingConfig) -> dict:
    source = FeatureSource(backbone="googlenet", weights="none")
    (location,) = feature_stores_for([source], sampling, None, work / "store")
    head = torch.nn.GRU(1024, 128, batch_first=True)
    fc = torch.nn.Linear(128, 2)
    optim = torch.optim.Adam([*head.parameters(), *fc.parameters()])

    def step(batch: dict) -> None:
        out, _ = head(batch["video"])
        loss = torch.nn.functional.cross_entropy(fc(out[:, -1]), batch["label"])
        optim.zero_grad()
        loss.backward()
        optim.step()

    cached = FeatureDataset(index, [location])

    def cached_epoch() -> None:
        for batch in DataLoader(cached, batch_size=4, shuffle=True, collate_fn=collate_clips):
            step(batch)

    backbone = FeatureExtractor([source], chunk_size=32)
    spec = get_backbone_spec("googlenet")
    clips = ClipDataset(index, sampling, ClipTransform(TransformConfig(), 224, spec.mean, spec.std))

    def video_epoch() -> None:
        loader = DataLoader(clips, batch_size=4, collate_fn=collate_clips)
        for batch in loader:
            video = batch["video"]
            with torch.no_grad():
                feats = torch.stack([
                    backbone.run({backbone.groups[0].prep_key: v})[backbone.keys[0]] for v in video
                ])  # fmt: skip
            step({"video": feats, "label": batch["label"]})

    cached_epoch()
    cached_s = timed(cached_epoch, repeat=3)
    print("epoch: cached done", file=sys.stderr)
    video_s = timed(video_epoch)
    return {
        "videos": len(index),
        "cached_epoch_s": cached_s,
        "video_epoch_s": video_s,
        "speedup": video_s / cached_s,
        "target_speedup": 50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8, help="GoogLeNet frames (ResNet152: /4)")
    args = parser.parse_args()
    start = time.perf_counter()
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    # emulated bf16 matmul runs ~60x below fp32 here: a small matrix is enough to measure it
    peaks = {
        "bf16": matmul_peak(torch.bfloat16, 1024 if native else 384),
        "fp32": matmul_peak(torch.float32),
    }
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        },
        "matmul_peak_gflops": peaks,
        "models": {},
        "targets": {"googlenet_speedup": 4.0, "resnet152_speedup": 3.0},
    }
    print("stage googlenet", time.perf_counter() - start, file=sys.stderr)
    results["models"]["googlenet"] = model_speed("googlenet", args.frames, peaks, args.compile)
    print("stage resnet152", time.perf_counter() - start, file=sys.stderr)
    results["models"]["resnet152"] = model_speed(
        "resnet152", max(1, args.frames // 4), peaks, args.compile
    )
    sampling = SamplingConfig(strategy="uniform", num_frames=args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index = make_videos(work / "videos", args.videos, 2 * args.frames)
        print("stage end_to_end", time.perf_counter() - start, file=sys.stderr)
        results["end_to_end"] = end_to_end(work, index, sampling)
        results["epoch"] = epochs(work, index, sampling)
    results["seconds"] = time.perf_counter() - start
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
