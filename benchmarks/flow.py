"""Flow benchmark: pairs/s per method at 224x224, in 1 and 2 processes, and accuracy per method.

Throughput: consecutive frames of a synthetic action clip (moving shape over a textured
background, 224x224 grayscale), one OpenCV thread per process; "2 processes" is the sum of
two forked workers' rates. Accuracy: a smoothed-noise texture moved by a known sub-pixel
translation; the end-point error (EPE, px, mean over the interior) of each method against
the truth and against TV-L1's own output, i.e. how much choosing a method other than TV-L1
changes the flow. Storage: compressed bytes per stored pair and the read-back time.
Figures of one run are measured back to back on a shared machine: compare the ratios.

    python benchmarks/flow.py --out benchmarks/results/flow.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from harkit.flow import compute_flow, load_flow, quantize_flow, save_flow, to_gray
from harkit.synth import SYNTH_CLASSES, SynthConfig, render_clip

METHODS = {"tvl1": 3, "farneback": 24, "dis": 60, "dis-fast": 60}  # timed pairs per process
SHIFTS = [(2.3, -1.7), (6.4, 3.2)]
SIZE = 224


def clip_frames(num_frames: int) -> np.ndarray:
    config = SynthConfig(size=SIZE, num_frames=max(num_frames, 4), noise_std=2.0)
    clip = render_clip(SYNTH_CLASSES[0], 1, 1, config)
    return np.stack([to_gray(frame) for frame in clip])


def texture(size: int = SIZE, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def pairs_per_second(method: str, count: int) -> float:
    """Rate over ``count`` consecutive pairs after one warm-up pair."""
    frames = clip_frames(count + 2)
    compute_flow(frames[0], frames[1], method)
    start = time.perf_counter()
    for t in range(count):
        compute_flow(frames[t % (len(frames) - 1)], frames[t % (len(frames) - 1) + 1], method)
    return count / (time.perf_counter() - start)


def throughput() -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    with pool:
        for method, count in METHODS.items():
            single = pairs_per_second(method, count)
            rates = list(pool.map(pairs_per_second, [method] * 2, [count] * 2))
            results[method] = {
                "pairs_per_s_1proc": round(single, 2),
                "pairs_per_s_2proc": round(sum(rates), 2),
                "ms_per_pair_1proc": round(1000 / single, 1),
            }
            print(method, results[method], flush=True)
    return results


def accuracy() -> dict[str, dict[str, float]]:
    image = texture()
    inner = (slice(16, -16), slice(16, -16))
    results: dict[str, dict[str, float]] = {}
    for dx, dy in SHIFTS:
        nxt = shifted(image, dx, dy)
        flows = {m: compute_flow(image, nxt, m)[inner] for m in METHODS}
        truth = np.array([dx, dy], dtype=np.float32)
        for method, flow in flows.items():
            row = results.setdefault(method, {})
            key = f"shift_{dx}_{dy}"
            error = np.linalg.norm(flow - truth, axis=-1)
            row[f"epe_vs_truth_{key}"] = round(float(error.mean()), 4)
            # the median shows whether a mean comes from a few outlier regions
            row[f"median_epe_vs_truth_{key}"] = round(float(np.median(error)), 4)
            row[f"epe_vs_tvl1_{key}"] = round(
                float(np.linalg.norm(flow - flows["tvl1"], axis=-1).mean()), 4
            )
    return results


def storage() -> dict[str, float]:
    frames = clip_frames(17)
    flow = np.stack([compute_flow(frames[t], frames[t + 1], "tvl1") for t in range(16)])
    q = quantize_flow(flow)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_flow(Path(tmp) / "v.npz", q, np.arange(17), "tvl1")
        size = path.stat().st_size
        start = time.perf_counter()
        for _ in range(5):
            load_flow(path)
        read_ms = (time.perf_counter() - start) / 5 * 1000
    decoded = q.astype(np.float32) * (40 / 255) - 20
    return {
        "pairs": 16,
        "bytes_per_pair_npz": round(size / 16),
        "bytes_per_pair_raw_uint8": SIZE * SIZE * 2,
        "read_ms_per_video": round(read_ms, 2),
        "quantisation_epe_px": round(float(np.linalg.norm(decoded - flow, axis=-1).mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # before forking: one thread per process, and safe in the children
    start = time.perf_counter()
    report = {
        "machine": {"platform": platform.platform(), "cpus": multiprocessing.cpu_count()},
        "size": f"{SIZE}x{SIZE}",
        "opencv": cv2.__version__,
        "throughput": throughput(),
        "accuracy_epe_px": accuracy(),
        "storage": storage(),
    }
    report["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
