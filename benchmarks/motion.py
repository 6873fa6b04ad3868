"""Motion on real video: the own-data recipes and mean-pooled heads on every real set.

For each set in ``../shared/realdata`` and each seed, through harkit's own pipeline
(``extract_features`` once per input configuration, then ``ablate``: Lightning training +
evaluation of every head on the same cache), held-out clip top-1 of:

* ``efficientnet-motion-gru``: Lite0 frame features + the weight-free ``flow_hist`` motion
  stream, one GRU each, learned weighted average; and its mean-pooled baseline
  ``ablations/efficientnet-motion-gru-mean`` on the same features;
* ``efficientnet-gru``: Lite0 features alone -> GRU; and ``ablations/efficientnet-gru-mean``.

Each recipe as it ships (its validation share, its epochs). Protocols:

* ``egogestar_dirs``: 5 fingertip paths, the split of its labels file (75 train, 35 test);
* ``gatech_ud810_ps7``: 3 arm gestures, leave-one-person-out (3 folds, mean over folds);
* ``mmaction2_samples``: six single clips of six classes, cut into 1 s windows; the first 60%
  of each clip's windows train, the later ones test (time-disjoint, same scenes: it checks that
  the heads learn from real footage, not that they generalise to new people).

    python benchmarks/motion.py --out benchmarks/results/motion.json --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from harkit.data.datasets import DatasetConfig, load_index
from harkit.data.video import PyAVReader
from harkit.experiments.ablate import Variant, ablate, recipe_variants
from harkit.features import extract_features
from harkit.synth import write_video

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
RECIPES = ("efficientnet-motion-gru", "efficientnet-gru")  # each with ablations/<name>-mean
WINDOW_S = 1.0
TRAIN_SHARE = 0.6


def _write_manifest(path: Path, rows: list[list[str]], header: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def egogestar_folds(data: Path, work: Path) -> list[tuple[str, Path]]:
    with (data / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = [[str(data / r["path"]), r["label"], r["split"]] for r in csv.DictReader(handle)]
    return [
        ("labels split", _write_manifest(work / "egogestar.csv", rows, ["path", "label", "split"]))
    ]


def gatech_folds(data: Path, work: Path) -> list[tuple[str, Path]]:
    with (data / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    folds = []
    for person in sorted({r["person"] for r in rows}, key=int):
        manifest = [
            [
                str(data / r["path"]),
                r["label"],
                "test" if r["person"] == person else "train",
                r["person"],
            ]
            for r in rows
        ]
        folds.append(
            (
                f"test person {person}",
                _write_manifest(
                    work / f"gatech_test_person{person}.csv",
                    manifest,
                    ["path", "label", "split", "person"],
                ),
            )
        )
    return folds


def mmaction2_folds(data: Path, work: Path) -> list[tuple[str, Path]]:
    """Each clip cut into 1 s windows (H.264 mp4 files in ``work``), time-disjoint split."""
    with (data / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    reader, manifest = PyAVReader(), []
    for row in rows:
        video = data / row["path"]
        info = reader.info(video)
        frames = list(reader.iter_frames(video))
        per_window = max(2, round(WINDOW_S * info.fps))
        count = max(2, len(frames) // per_window)
        train_windows = max(1, math.floor(count * TRAIN_SHARE))
        for k in range(count):
            clip = frames[k * per_window : (k + 1) * per_window]
            if len(clip) < 2:
                continue
            # even sizes for yuv420p; the 1920x1080 NTU clips halved to keep the files small
            scale = 2 if clip[0].shape[1] > 1000 else 1
            stack = np.stack(clip)[:, ::scale, ::scale]
            h, w = (stack.shape[1] // 2) * 2, (stack.shape[2] // 2) * 2
            name = row["path"].replace("/", "_").replace(".", "_")  # .mp4 and .avi share stems
            out = work / "mmaction2_windows" / f"{name}_w{k:02d}.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.is_file():
                write_video(out, np.ascontiguousarray(stack[:, :h, :w]), fps=info.fps)
            manifest.append([str(out), row["label"], "train" if k < train_windows else "test"])
    return [
        (
            "first 60% of windows train",
            _write_manifest(work / "mmaction2.csv", manifest, ["path", "label", "split"]),
        )
    ]


SETS = {
    "egogestar_dirs": egogestar_folds,
    "gatech_ud810_ps7": gatech_folds,
    "mmaction2_samples": mmaction2_folds,
}


def variants(seed: int, overrides: list[str]) -> list[Variant]:
    names = [name for recipe in RECIPES for name in (recipe, f"ablations/{recipe}-mean")]
    return recipe_variants(names, [*overrides, f"optim.seed={seed}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--data", type=Path, default=REALDATA)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--work", type=Path, help="feature stores and runs (default: temp dir)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|litlogger).*")
    work = args.work or Path(tempfile.mkdtemp(prefix="harkit-motion-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    seconds: dict[str, dict[str, float]] = {}
    protocols: dict[str, list[str]] = {}
    for name in args.sets:
        data = args.data / name
        if not (data / "labels.csv").is_file():
            raise SystemExit(f"{data}/labels.csv not found (the ../shared real-data folder)")
        folds = SETS[name](data, work)
        protocols[name] = [fold for fold, _ in folds]
        store = work / f"store-{name}"
        start = time.perf_counter()
        index = load_index(DatasetConfig(root=folds[0][1]))  # every fold lists all clips
        done: set[str] = set()
        for variant in variants(args.seeds[0], args.set):
            key = variant.recipe.input.model_dump_json()
            if key in done:
                continue
            done.add(key)
            inp = variant.recipe.input
            report = extract_features(
                index,
                inp.features,
                store,
                inp.sampling,
                inp.transform,
                flow_method=inp.flow_method,
                num_workers=0,
                video_root=work if name == "mmaction2_samples" else data,
                progress=False,
            )
            if report.failed:
                raise SystemExit(f"{name}: {report.failed} videos failed to extract")
        seconds[name] = {"extract": round(time.perf_counter() - start, 1)}
        start = time.perf_counter()
        for seed in args.seeds:
            for fold, manifest in folds:
                rows = ablate(
                    variants(seed, args.set),
                    DatasetConfig(root=manifest),
                    work / name / f"seed{seed}" / fold.replace(" ", "_"),
                    store=store,
                    progress=False,
                )
                for row in rows:
                    entry = results.setdefault(name, {}).setdefault(row["variant"], {"runs": []})
                    entry["runs"].append({"seed": seed, "fold": fold, "top1": row["top1"]})
        seconds[name]["train_and_evaluate"] = round(time.perf_counter() - start, 1)
        for entry in results[name].values():
            per_seed = [
                statistics.fmean(r["top1"] for r in entry["runs"] if r["seed"] == s)
                for s in args.seeds
            ]
            entry["top1_per_seed"] = per_seed
            entry["mean_top1"] = statistics.fmean(per_seed)
            entry["std_top1_over_seeds"] = statistics.pstdev(per_seed)
        for recipe in RECIPES:
            gru, mean = results[name][recipe], results[name][f"ablations/{recipe}-mean"]
            gru["gru_minus_mean"] = gru["mean_top1"] - mean["mean_top1"]
    out = {
        "benchmark": "motion on real video: own-data recipes vs mean-pooled heads",
        "data": str(args.data),
        "seeds": args.seeds,
        "overrides": args.set,
        "protocols": protocols,
        "results": results,
        "seconds": seconds,
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{'set':18s} {'variant':40s} {'top-1':>7s} {'+-seeds':>8s} {'GRU-mean':>9s}")
    for name, entries in results.items():
        for variant, entry in entries.items():
            gap = entry.get("gru_minus_mean")
            print(
                f"{name:18s} {variant:40s} {100 * entry['mean_top1']:6.1f}% "
                f"{100 * entry['std_top1_over_seeds']:7.1f} "
                + (f"{100 * gap:+8.1f}" if gap is not None else "")
            )


if __name__ == "__main__":
    main()
