"""Decode benchmark: clip loading vs the naive way, sequential fps, DataLoader clips/s.

Clip loading = 16 uniformly sampled frames of a 7 s 320x240 25 fps H.264 clip (mp4 and AVI,
with B-frames). Naive = PyAV decodes every frame and converts every frame to an array, then
picks. All figures of one run are measured back to back; compare the ratios, not the
absolute numbers, on a shared machine.

    python benchmarks/decode.py --out benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from harkit.data import (
    ClipDataset,
    SamplingConfig,
    VideoIndex,
    VideoItem,
    available_backends,
    collate_clips,
    get_reader,
    sample_indices,
)
from harkit.data.video import rgb_converter
from harkit.synth import write_video


def make_clip(path: Path, seconds: float = 7, fps: int = 25, size=(240, 320)) -> Path:
    """Textured background with moving blocks: realistic-ish motion for the encoder."""
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1)
    base = (base + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8)
    frames = np.repeat(base[None], int(seconds * fps), axis=0)
    for t in range(len(frames)):
        x, y = (5 * t) % (w - 40), (3 * t) % (h - 40)
        frames[t, y : y + 40, x : x + 40] = (255, (7 * t) % 255, 30)
    return write_video(path, frames, fps=fps)


def naive_clip(path: Path, indices: np.ndarray) -> np.ndarray:
    with av.open(str(path)) as container:
        # not to_ndarray(format=...): PyAV 18.1.1's per-thread converter would hang the
        # forked loader workers benchmarked after it (see rgb_converter)
        to_rgb = rgb_converter()
        frames = [to_rgb(frame) for frame in container.decode(video=0)]
    return np.stack(frames)[indices]


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_file(path: Path, repeats: int) -> dict:
    num_frames = get_reader("pyav").info(path).num_frames
    indices = sample_indices(num_frames, SamplingConfig(strategy="uniform", num_frames=16)).indices
    reference = naive_clip(path, indices)
    naive_s = best_of(lambda: naive_clip(path, indices), repeats)
    result = {"frames": num_frames, "naive_clip_ms": naive_s * 1e3, "backends": {}}
    for backend in available_backends():
        if backend == "frames":
            continue
        reader = get_reader(backend)
        identical = bool(np.array_equal(reader.read_frames(path, indices), reference))
        clip_s = best_of(lambda r=reader: r.read_frames(path, indices), repeats)
        seq_s = best_of(lambda r=reader: sum(1 for _ in r.iter_frames(path)), max(1, repeats // 2))
        result["backends"][backend] = {
            "clip_ms": clip_s * 1e3,
            "speedup_vs_naive": naive_s / clip_s,
            "bit_identical": identical,
            "sequential_fps": num_frames / seq_s,
        }
    return result


def bench_loader(path: Path, workers: int, clips: int) -> float:
    index = VideoIndex("bench", [VideoItem(path, "x")] * clips, ["x"])
    dataset = ClipDataset(index, SamplingConfig(strategy="uniform", num_frames=16))
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, collate_fn=collate_clips)
    start = time.perf_counter()
    seen = sum(len(batch["label"]) for batch in loader)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decode.json"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loader-clips", type=int, default=64)
    args = parser.parse_args()

    torch.set_num_threads(1)
    report: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "clip": "16 uniform frames of a 7 s 320x240 25 fps H.264 clip (B-frames)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("mp4", "avi"):
            path = make_clip(Path(tmp) / f"clip.{suffix}")
            report[suffix] = bench_file(path, args.repeats)
        mp4 = Path(tmp) / "clip.mp4"
        report["dataloader_clips_per_s"] = {
            f"workers_{w}": bench_loader(mp4, w, args.loader_clips) for w in (0, 2)
        }
    speedups = [
        b["speedup_vs_naive"] for s in ("mp4", "avi") for b in report[s]["backends"].values()
    ]
    report["summary"] = {
        "min_speedup_vs_naive": min(speedups),
        "median_speedup_vs_naive": statistics.median(speedups),
        "all_bit_identical": all(
            b["bit_identical"] for s in ("mp4", "avi") for b in report[s]["backends"].values()
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
