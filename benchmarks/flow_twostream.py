"""How much the optical-flow method changes the two-stream result, on the synthetic dataset.

For each method: flow files for every clip, then the two-stream recipe (seed 001's GRU heads
and learned weighted average) on weight-free features, RGB ``tiny_image`` + flow
``tiny_flow``, trained and tested on held-out actors. The flow-only stream is reported too.
Pretrained I3D weights cannot be downloaded here; the ranking of methods is what this
measures, with the cost of each method beside it.

    python benchmarks/flow_twostream.py --out benchmarks/results/flow_twostream.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from harkit.data.datasets import DatasetConfig
from harkit.data.sampling import SamplingConfig
from harkit.data.splits import build_index
from harkit.experiments.evaluate import evaluate_run
from harkit.features.pipeline import extract_features
from harkit.flow.extract import compute_dataset_flow
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig, render_dataset
from harkit.train.trainer import train

SOURCES = {
    "two-stream": "[{backbone: tiny_image, weights: none, stream: rgb},"
    " {backbone: tiny_flow, weights: none, stream: flow}]",
    "flow-only": "[{backbone: tiny_flow, weights: none, stream: flow}]",
}


def run_method(method: str, data: Path, work: Path, epochs: int) -> dict:
    config = DatasetConfig(root=data)
    index = build_index(config)
    sampling = SamplingConfig(strategy="uniform", num_frames=16)
    flow_root = work / "flow" / method
    start = time.perf_counter()
    summary = compute_dataset_flow(
        index, flow_root, method, size=None, sampling=sampling, num_workers=2, progress=False
    )
    seconds = time.perf_counter() - start
    result = {
        "flow_pairs": summary.pairs,
        "flow_s": round(seconds, 1),
        "flow_pairs_per_s_2proc": round(summary.pairs / seconds, 1),
    }
    for variant, sources in SOURCES.items():
        head = (
            ["head.type=two_stream"]
            if variant == "two-stream"
            else ["head.type=recurrent", "head.num_layers=2"]
        )
        recipe = load_recipe(
            "i3d-gru-twostream",
            [
                f"input.features={sources}",
                "input.sampling.strategy=uniform",
                "input.sampling.num_frames=16",
                f"input.flow_method={method}",
                "head.hidden=64",
                f"optim.epochs={epochs}",
                "optim.batch_size=16",
                "optim.optimizer=adam",
                "optim.weight_decay=0",
                "optim.val_fraction=0",
                *head,
            ],
        )
        store = work / "store"
        extract_features(
            index,
            recipe.input.features,
            store,
            recipe.input.sampling,
            recipe.input.transform,
            flow_root=flow_root,
            flow_method=method,
            num_workers=0,
            progress=False,
        )
        run = work / "runs" / f"{method}-{variant}"
        train(recipe, config, run, store=store, progress=False)
        metrics = evaluate_run(run, store=store).clip
        result[variant] = {
            "top1": round(100 * metrics.top1, 2),
            "f1_macro": round(100 * metrics.f1_macro, 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/flow_twostream.json"))
    parser.add_argument("--methods", nargs="+", default=["dis-fast", "dis", "farneback", "tvl1"])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth = SynthConfig(num_actors=8, clips_per_actor=2, test_actors=2)
        render_dataset(work / "synth", synth)
        report = {
            "dataset": "synthetic, 12 classes, 8 actors (2 held out) x 2 clips, 96 px",
            "features": "tiny_image (RGB) + tiny_flow (flow), 16 uniformly sampled steps",
            "methods": {m: run_method(m, work / "synth", work, args.epochs) for m in args.methods},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
