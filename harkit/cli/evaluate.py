"""``harkit evaluate RUN``: test a run folder's model and write RUN/report/."""

from __future__ import annotations

import argparse
from pathlib import Path

from harkit.cli.args import add_dataset_args, dataset_config, folder, int_in_range


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a run folder on its test split")
    p.add_argument("run", type=Path, help="run folder written by 'harkit train'")
    add_dataset_args(p, required=False, split_options=True)
    p.add_argument("--store", type=folder, help="feature store (default: the training run's)")
    p.add_argument("--clips", type=int_in_range(1, 1000), default=1,
                   help="views per video, averaged into video-level metrics when > 1")
    p.add_argument("--out", type=folder, help="report folder (default: RUN/report)")
    p.add_argument("--batch-size", type=int_in_range(1, 65536),
                   help="test batch size (default: the recipe's)")
    p.add_argument("--precision", default="32", choices=["32", "bf16"],
                   help="inference precision (bf16: autocast, checked against fp32 in benchmarks)")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from harkit.train.evaluate import evaluate_run

    config = dataset_config(args) if args.dataset else None
    # without --dataset, the dataset options given apply to the data the run recorded
    recorded = {"split": args.split, "allow_leakage": args.allow_leakage or None,
                "annotations": args.annotations, "group_column": args.group_column,
                "kind": None if args.kind == "auto" else args.kind}
    result = evaluate_run(args.run, config, clips=args.clips, store=args.store, out_dir=args.out,
                          batch_size=args.batch_size, precision=args.precision,
                          recorded_overrides={k: v for k, v in recorded.items() if v})
    line = f"clip-level top-1 {100 * result.clip.top1:.2f}%"
    if result.video is not None:
        line += f", video-level top-1 {100 * result.video.top1:.2f}%"
    print(f"{line} -> {result.files.get('report', args.out or args.run / 'report')}")
    return 0
