"""What grid features and the motion stream cost: whole-job extraction time and store size.

One process, the same videos, ``extract_features`` (what ``harkit extract`` runs) into a fresh
float16 store per configuration, in alternating order over ``--repeats`` rounds (the median
is reported, so a noisy neighbour hits every configuration alike):

* ``pooled``: EfficientNet-Lite0's global-average-pooled 1280-d features (``efficientnet-gru``);
* ``grid2`` / ``grid3``: its ``bn2`` head map averaged over 2x2 / 3x3 cells (5120 / 11520-d);
* ``motion``: the weight-free ``flow_hist`` stream alone (DIS flow of the sampled pairs,
  computed during extraction, 128-d);
* ``pooled+motion``: both streams of ``efficientnet-motion-gru`` in one job.

Ratios are to ``pooled``: time (the issue's bound for grids: 1.3x) and bytes on disk. Videos:
the EgoGestAR clips from ``../shared/realdata`` (640x480 phone video) when present, else
generated 640x480 H.264 clips.

    python benchmarks/features_cost.py --out benchmarks/results/features_cost.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harkit.data.datasets import DatasetConfig, VideoIndex, VideoItem, load_index
from harkit.features import extract_features
from harkit.models.recipe import FeatureSource, load_recipe
from harkit.synth import write_video

EGOGESTAR = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "egogestar_dirs"
LITE = {"backbone": "efficientnet_lite0", "weights": "imagenet"}
MOTION = FeatureSource(backbone="flow_hist", weights="none", stream="flow")
CONFIGS: dict[str, list[FeatureSource]] = {
    "pooled": [FeatureSource(**LITE)],
    "grid2": [FeatureSource(**LITE, layer="bn2", grid=2)],
    "grid3": [FeatureSource(**LITE, layer="bn2", grid=3)],
    "motion": [MOTION],
    "pooled+motion": [FeatureSource(**LITE), MOTION],
}


def videos(work: Path, count: int) -> VideoIndex:
    if (EGOGESTAR / "labels.csv").is_file():
        index = load_index(DatasetConfig(root=EGOGESTAR / "labels.csv"))
        return index.select(list(index)[:count])
    rng = np.random.default_rng(0)
    items = []
    for k in range(count):
        frames = rng.integers(0, 255, (60, 480, 640, 3), dtype=np.uint8)
        path = write_video(work / "videos" / f"clip{k}.mp4", frames, fps=30)
        items.append(VideoItem(path, "x", None, "train"))
    return VideoIndex("generated", items, ["x"])


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.npy"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe("efficientnet-motion-gru")
    sampling, transform = recipe.input.sampling, recipe.input.transform
    work = Path(tempfile.mkdtemp(prefix="harkit-cost-"))
    index = videos(work, args.videos)
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    sizes: dict[str, int] = {}
    for sources in CONFIGS.values():  # warm-up: ONNX graphs exported, files cached
        extract_features(
            index.select(list(index)[:2]),
            sources,
            work / "warm",
            sampling,
            transform,
            flow_method=recipe.input.flow_method,
            num_workers=1,
            progress=False,
        )
    for _ in range(args.repeats):
        for name, sources in CONFIGS.items():
            store = work / name
            shutil.rmtree(store, ignore_errors=True)
            start = time.perf_counter()
            report = extract_features(
                index,
                sources,
                store,
                sampling,
                transform,
                flow_method=recipe.input.flow_method,
                num_workers=1,
                progress=False,
            )
            seconds[name].append(time.perf_counter() - start)
            assert report.failed == 0, report
            sizes[name] = store_bytes(store)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    out = {
        "benchmark": "extraction cost of grid features and the motion stream",
        "videos": len(index),
        "source": index.name,
        "sampling": sampling.describe(),
        "crop": list(transform.crop_size or ()),
        "seconds_median": median,
        "seconds_all": seconds,
        "time_vs_pooled": {n: round(median[n] / median["pooled"], 3) for n in CONFIGS},
        "store_bytes": sizes,
        "store_vs_pooled": {n: round(sizes[n] / sizes["pooled"], 3) for n in CONFIGS},
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{len(index)} videos ({index.name}), {sampling.describe()}")
    for name in CONFIGS:
        print(
            f"{name:14s} {median[name]:6.1f} s  x{out['time_vs_pooled'][name]:.2f} time  "
            f"{sizes[name] / 1e6:7.2f} MB  x{out['store_vs_pooled'][name]:.2f} store"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
