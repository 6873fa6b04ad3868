"""efficientnet-gru on real people: leave-one-person-out top-1, GRU vs a mean-pooled head.

GaTech UD810 PS7 (27 clips: 3 arm gestures x 3 people x 3 trials, 640x480) from
``../shared/realdata/gatech_ud810_ps7``. Each fold trains on two people and tests on the
third, through harkit's own pipeline: ``extract_features`` once into a feature store (in the
precision ``precision='auto'`` resolves to, recorded in the JSON),
then ``ablate`` per fold (train + evaluate each head variant on the same cache). Validation
is off (``optim.val_fraction=0``): a group-aware validation split would leave one person to
train on. The baseline is the order-agnostic ``head.type=mean`` on the same features, with
and without ``head.center`` (for a mean head: the spread around the clip's mean). Each
variant runs with several seeds; the JSON holds every fold's top-1 and the mean over folds
(every person has 9 clips, so that is also the pooled top-1) per seed and over seeds.

    python benchmarks/efficientnet_gru.py --out benchmarks/results/efficientnet_gru.json \
        [--grid head.hidden=64,128,256 --grid head.center=true,false] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from harkit.data.datasets import DatasetConfig, load_index
from harkit.experiments.ablate import Variant, ablate, grid_variants, parse_grid
from harkit.features import extract_features

RECIPE = "efficientnet-gru"
DATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "gatech_ud810_ps7"


def write_folds(data: Path, work: Path) -> list[tuple[str, Path]]:
    """One manifest per held-out person, all in ``work`` (so video ids are shared)."""
    with (data / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    people = sorted({row["person"] for row in rows}, key=int)
    folds = []
    for person in people:
        path = work / f"test_person{person}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "split", "person"])
            for row in rows:
                split = "test" if row["person"] == person else "train"
                writer.writerow([str(data / row["path"]), row["label"], split, row["person"]])
        folds.append((person, path))
    return folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, help="feature store and runs (default: a temp dir)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="GRU variants to compare (default: the recipe as it is)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-baseline", action="store_true", help="skip the mean-pooled head")
    args = parser.parse_args()
    if not (args.data / "labels.csv").is_file():
        raise SystemExit(f"{args.data}/labels.csv not found (the ../shared real-data folder)")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # one Trainer per fold
    warnings.filterwarnings("ignore", message=".*(LeafSpec|litlogger).*")  # Lightning's own
    work = args.work or Path(tempfile.mkdtemp(prefix="harkit-effgru-"))
    work.mkdir(parents=True, exist_ok=True)
    folds = write_folds(args.data, work)
    common = ["optim.val_fraction=0", *args.set]
    grid = parse_grid(args.grid)

    def variants(seed: int) -> list[Variant]:
        seeded = [*common, f"optim.seed={seed}"]
        found = grid_variants(RECIPE, grid, seeded)
        if not args.no_baseline:
            centering = {"head.center": ["true", "false"]}
            found += [
                replace(v, name=f"mean-pool {v.name}")
                for v in grid_variants(RECIPE, centering, [*seeded, "head.type=mean"])
            ]
        return found

    # Features once: every variant and fold reads the same store.
    start = time.perf_counter()
    index = load_index(DatasetConfig(root=folds[0][1]))  # every fold lists all clips
    done, precisions = set(), set()
    for variant in variants(args.seeds[0]):
        key = variant.recipe.input.model_dump_json()
        if key in done:
            continue
        done.add(key)
        report = extract_features(
            index,
            variant.recipe.input.features,
            work / "store",
            variant.recipe.input.sampling,
            variant.recipe.input.transform,
            precision="auto",
            num_workers=0,
            video_root=work,
            progress=False,
        )
        # what the extractor ran (EfficientNet-Lite stays fp32 under 'auto', see harkit.precision)
        precisions.add((report.extractor or {}).get("precision", "none: all cached"))
        if report.failed:
            raise SystemExit(f"{report.failed} videos failed to extract; see {work / 'store'}")
    extract_s = time.perf_counter() - start

    results: dict[str, dict] = {}
    start = time.perf_counter()
    for seed in args.seeds:
        for person, manifest in folds:
            rows = ablate(
                variants(seed),
                DatasetConfig(root=manifest),
                work / f"seed{seed}" / f"test_person{person}",
                store=work / "store",
                progress=False,
            )
            for row in rows:
                entry = results.setdefault(row["variant"], {"folds": []})
                entry["folds"].append(
                    {"seed": seed, "test_person": int(person), "top1": row["top1"]}
                )
    train_s = time.perf_counter() - start

    for entry in results.values():
        per_seed = [
            statistics.fmean(f["top1"] for f in entry["folds"] if f["seed"] == s)
            for s in args.seeds
        ]
        entry["top1_per_seed"] = per_seed
        entry["mean_top1"] = statistics.fmean(per_seed)
        entry["std_top1_over_seeds"] = statistics.pstdev(per_seed)
    out = {
        "benchmark": "efficientnet-gru leave-one-person-out",
        "dataset": str(args.data),
        "recipe": RECIPE,
        "overrides": common,
        "extraction_precision": sorted(precisions),
        "grid": grid,
        "seeds": args.seeds,
        "results": results,
        "seconds": {"extract": round(extract_s, 1), "train_and_evaluate": round(train_s, 1)},
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    for name, entry in sorted(results.items(), key=lambda kv: -kv[1]["mean_top1"]):
        print(
            f"{100 * entry['mean_top1']:6.2f}% (+-{100 * entry['std_top1_over_seeds']:.2f} "
            f"over seeds)  {name}"
        )


if __name__ == "__main__":
    main()
