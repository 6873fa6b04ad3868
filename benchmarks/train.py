"""Training and inference throughput of each recipe's trainable model on this machine.

Sequences (clips) per second for one optimiser step (forward + backward + Adam) and for
inference, fp32 against three bf16 paths: autocast under ``no_grad``, autocast under
``inference_mode`` and bf16 weights. Each bf16 path is checked against fp32 (top-1 agreement,
max probability difference) and the fastest correct one is reported.

    python benchmarks/train.py --out benchmarks/results/train.json [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from collections.abc import Callable

import torch

from harkit.models.builder import build_model, feature_dims
from harkit.models.recipe import load_recipe
from harkit.train.run import offline_recipe

# (name, recipe, overrides, batch, steps T, input kind)
CASES = [
    ("fusion-gru: GRU 1000x2 over 2560-d x 30", "fusion-gru", [], 4, 30),
    ("i3d-gru-twostream: GRU 2x256 over 2x1024-d x 10", "i3d-gru-twostream", [], 16, 10),
    (
        "corehar head: BiLSTM 512x3 over 512-d x 28",
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none}]",
            "head.cell=lstm",
            "head.hidden=512",
            "head.num_layers=3",
            "head.bidirectional=true",
            "head.fc=[256]",
        ],
        8,
        28,
    ),
    ("attn-lstm: dual LSTM 256 + attention over 1024+2048-d x 20", "attn-lstm", [], 16, 20),
    ("c3d-gru: 3D CNN + GRU 128 on 20x100x100 clips", "c3d-gru", [], 4, 20),
]
NUM_CLASSES = 101


def _timeit(fn: Callable[[], object], seconds: float, min_iters: int = 1) -> float:
    fn()  # warm-up
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < seconds:
        fn()
        iters += 1
    return (time.perf_counter() - start) / iters


def bench_case(
    name: str, recipe_name: str, overrides: list[str], batch: int, steps: int, seconds: float
) -> dict:
    recipe = offline_recipe(load_recipe(recipe_name, overrides))
    torch.manual_seed(0)
    model = build_model(recipe, NUM_CLASSES)
    if recipe.mode == "features":
        x = torch.randn(batch, steps, sum(feature_dims(recipe)))
    else:
        size = recipe.network.size
        x = torch.randn(batch, steps, 3, size, size)
    lengths = torch.full((batch,), steps)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    params = sum(p.numel() for p in model.parameters())

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step(autocast: bool) -> Callable[[], None]:
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(x, lengths)
            torch.nn.functional.cross_entropy(logits.float(), y).backward()
            optimizer.step()

        return step

    model.train()
    train_fp32 = batch / _timeit(train_step(False), seconds)
    try:
        train_bf16: float | str = batch / _timeit(train_step(True), seconds)
    except RuntimeError as exc:  # e.g. oneDNN has no bf16 LSTM on some CPUs
        train_bf16 = f"error: {str(exc).splitlines()[0]}"

    model.eval()
    with torch.no_grad():
        ref = torch.softmax(model(x, lengths).float(), 1)
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)

    def infer(mode: str) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            if mode == "fp32":
                with torch.no_grad():
                    return model(x, lengths)
            if mode == "bf16_autocast_no_grad":
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(x, lengths)
            if mode == "bf16_autocast_inference_mode":
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(x, lengths)
            with torch.no_grad():
                return bf16_model(x.to(torch.bfloat16), lengths)

        return run

    inference = {}
    for mode in ("fp32", "bf16_autocast_no_grad", "bf16_autocast_inference_mode", "bf16_weights"):
        fn = infer(mode)
        try:
            probs = torch.softmax(fn().float(), 1)
        except RuntimeError as exc:
            inference[mode] = {"error": str(exc).splitlines()[0]}
            continue
        inference[mode] = {
            "seq_per_s": batch / _timeit(fn, seconds),
            "top1_agreement": float((probs.argmax(1) == ref.argmax(1)).float().mean()),
            "max_prob_diff": float((probs - ref).abs().max()),
        }
    correct = {
        m: r
        for m, r in inference.items()
        if m != "fp32" and "error" not in r and r["max_prob_diff"] < 0.02
    }
    fastest = max(correct, key=lambda m: correct[m]["seq_per_s"]) if correct else "fp32"
    if inference["fp32"]["seq_per_s"] >= inference[fastest]["seq_per_s"]:
        fastest = "fp32"
    return {
        "case": name,
        "recipe": recipe_name,
        "params": params,
        "batch": batch,
        "steps": steps,
        "train_seq_per_s": {"fp32": train_fp32, "bf16_autocast": train_bf16},
        "inference": inference,
        "fastest_correct_inference": fastest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="0.3 s per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds = 0.3 if args.quick else args.seconds
    results = []
    for case in CASES:
        res = bench_case(*case, seconds=seconds)
        inf = res["inference"]
        bf16 = res["train_seq_per_s"]["bf16_autocast"]
        print(
            f"{res['case']}: train fp32 {res['train_seq_per_s']['fp32']:.1f} seq/s, "
            f"bf16 {bf16 if isinstance(bf16, str) else f'{bf16:.1f}'}; infer fp32 "
            f"{inf['fp32']['seq_per_s']:.1f}, "
            + ", ".join(
                f"{m} {r['seq_per_s']:.1f} (diff {r['max_prob_diff']:.3f})"
                if "error" not in r
                else f"{m} failed"
                for m, r in inf.items()
                if m != "fp32"
            )
            + f" -> {res['fastest_correct_inference']}",
            flush=True,
        )
        results.append(res)
    payload = {
        "benchmark": "train",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "num_classes": NUM_CLASSES,
        "results": results,
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    main()
