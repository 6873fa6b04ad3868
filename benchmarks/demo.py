"""``make demo`` measured: held-out top-1, GRU vs mean-pooling on the time-order pairs, the
final predictions, and the run time of every stage.

Runs the demo's own stages (``harkit.cli.demo.stages``: synthesise, extract, train, evaluate,
ablate, stream, predict) into ``--work``, timing each, then reads the results back through
the library: ``evaluate_run`` on the trained run and on the four ablation runs (the motion
recipe and the appearance-only ``efficientnet-gru``, each with its GRU and an order-agnostic
mean-pooled head), and ``Recognizer.predict`` on the clips the demo predicts.
"Time-order pairs" are the classes that are the same motion played forwards and backwards:
per frame they look alike, so on appearance features a mean-pooled head can only guess
between the two (the flow stream shows each step's direction, so there it need not).
``--seeds`` trains the ablation again with other seeds on the same feature cache.

    python benchmarks/demo.py --out benchmarks/results/demo.json [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shlex
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from harkit.cli.demo import ABLATION_RECIPES, RECIPE, TEST_CLIPS, stages
from harkit.cli.main import main as harkit
from harkit.data.datasets import DatasetConfig
from harkit.experiments.ablate import ablate, recipe_variants, variant_dir
from harkit.experiments.evaluate import evaluate_run
from harkit.features.engines import sources_precision
from harkit.infer import Recognizer
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig


def scores(run: Path, pair_classes: set[str]) -> dict[str, float]:
    """Top-1 on the held-out actors, overall and on the time-order pair classes only."""
    result = evaluate_run(run)
    preds = result.predictions
    classes = json.loads((run / "classes.json").read_text(encoding="utf-8"))
    names = [str(c) for c in (classes["classes"] if isinstance(classes, dict) else classes)]
    correct = preds.probs.argmax(1) == preds.labels
    in_pairs = np.array([names[int(label)] in pair_classes for label in preds.labels])
    return {
        "top1": float(correct.mean()),
        "pairs_top1": float(correct[in_pairs].mean()),
        "order_free_top1": float(correct[~in_pairs].mean()),
        "test_clips": len(correct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--work", type=Path, help="demo output folder (default: a temp dir)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="ablation seeds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|litlogger).*")
    work = args.work or Path(tempfile.mkdtemp(prefix="harkit-demo-"))

    seconds: dict[str, float] = {}
    total = time.perf_counter()
    for argv in stages(work):
        print(f"$ harkit {shlex.join(argv)}", flush=True)
        start = time.perf_counter()
        code = harkit(argv)
        name = " ".join(argv[:2]) if argv[0] == "data" else argv[0]
        seconds[name] = round(time.perf_counter() - start, 1)
        if code:
            raise SystemExit(f"'harkit {argv[0]}' exited with {code}")
    seconds["total"] = round(time.perf_counter() - total, 1)

    data = work / "synth"
    config = SynthConfig.model_validate_json((data / "synth_config.json").read_text("utf-8"))
    pairs = config.time_order_pairs
    pair_classes = {name for pair in pairs for name in pair}
    run = work / "runs" / RECIPE
    demo_run = scores(run, pair_classes)

    recognizer = Recognizer.from_run(run)
    final = []
    for clip in TEST_CLIPS:
        prediction = recognizer.predict(data / clip, top_k=3)
        truth = Path(clip).parent.name
        final.append(
            {
                "clip": clip,
                "true": truth,
                "predicted": prediction.label,
                "confidence": round(prediction.confidence, 4),
                "correct": prediction.label == truth,
            }
        )

    # The ablation again per seed (features are cached): how much of the gap is luck.
    ablation: dict[str, list[dict]] = {}
    dataset = DatasetConfig(root=data)
    for seed in args.seeds:
        folder = work / "ablation" if seed == 0 else work / f"ablation-seed{seed}"
        variants = recipe_variants(ABLATION_RECIPES, [f"optim.seed={seed}"] if seed else [])
        if seed != 0:
            ablate(variants, dataset, folder, store=work / "features", progress=False)
        for variant in variants:
            entry = scores(variant_dir(folder, variant.name), pair_classes)
            ablation.setdefault(variant.name, []).append({"seed": seed, **entry})

    def gaps(recipe: str) -> list[float]:
        gru, mean = ablation[recipe], ablation[f"ablations/{recipe}-mean"]
        return [g["pairs_top1"] - m["pairs_top1"] for g, m in zip(gru, mean, strict=True)]

    appearance, motion = gaps("efficientnet-gru"), gaps(RECIPE)

    out = {
        "benchmark": "make demo (harkit.cli.demo) on synthetic people",
        "recipe": RECIPE,
        "synth_config": json.loads(config.model_dump_json()),
        "time_order_pairs": pairs,
        "extraction_precision": sources_precision(
            load_recipe(RECIPE).input.features, "auto", torch.device("cpu")
        ),
        "demo_run": demo_run,
        "final_predictions": final,
        "final_predictions_correct": sum(f["correct"] for f in final),
        "ablation": ablation,
        # the demo's goal: on appearance alone only frame order tells the pairs apart
        "gru_minus_mean_on_pairs": {"per_seed": appearance, "mean": statistics.fmean(appearance)},
        "motion_gru_minus_mean_on_pairs": {"per_seed": motion, "mean": statistics.fmean(motion)},
        "seconds": seconds,
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(
        f"held-out top-1 {100 * demo_run['top1']:.1f}% (pairs {100 * demo_run['pairs_top1']:.1f}%)"
        f"; GRU - mean on pairs {100 * statistics.fmean(appearance):+.1f} points on appearance, "
        f"{100 * statistics.fmean(motion):+.1f} with motion; final predictions "
        f"{out['final_predictions_correct']}/{len(final)} right; {seconds['total']:.0f} s"
    )


if __name__ == "__main__":
    main()
