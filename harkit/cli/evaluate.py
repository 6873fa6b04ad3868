"""``harkit evaluate RUN``: test a run folder's model and write RUN/report/.

With ``--splits 1,2,3`` RUN is the folder ``harkit train --splits`` wrote: each
``RUN/split<k>/`` is evaluated and ``RUN/splits.md`` holds the mean over them (over only
some of the split runs RUN holds: ``RUN/splits-1-2.md``, so the full mean is kept).
"""

from __future__ import annotations

import argparse

from harkit.cli.args import (
    add_dataset_args,
    dataset_config,
    folder,
    int_in_range,
    path_arg,
    print_splits_summary,
    split_list,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a run folder on its test split")
    p.add_argument(
        "run",
        type=path_arg,
        help="run folder written by 'harkit train' (with --splits: "
        "the folder 'harkit train --splits' wrote, holding split1/, split2/, ...)",
    )
    add_dataset_args(p, required=False, split_options=True)
    p.add_argument(
        "--splits",
        type=split_list,
        default=[],
        help="evaluate RUN/split<k> for each split, e.g. 1,2,3, or every fold of "
        "'train --splits leave-one-group-out' / 'K-fold'; report the mean",
    )
    p.add_argument("--store", type=folder, help="feature store (default: the training run's)")
    p.add_argument(
        "--clips",
        type=int_in_range(1, 1000),  # harkit.experiments.evaluate.MAX_VIEWS
        default=1,
        help="views per video, averaged into video-level metrics when > 1",
    )
    p.add_argument(
        "--out",
        type=folder,
        help="report folder (default: RUN/report; with "
        "--splits: OUT/split<k>/ and OUT/splits.md, or splits-1-2.md for some of "
        "RUN's splits; default RUN)",
    )
    p.add_argument(
        "--batch-size", type=int_in_range(1, 65536), help="test batch size (default: the recipe's)"
    )
    p.add_argument(
        "--precision",
        default="32",
        choices=["32", "bf16"],
        help="inference precision (bf16: autocast, checked against fp32 in benchmarks)",
    )
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from harkit.config import ConfigError

    config = dataset_config(args) if args.dataset else None
    # without --dataset, the dataset options given apply to the data the run recorded
    recorded = {
        "split": args.split,
        "allow_leakage": args.allow_leakage or None,
        "annotations": args.annotations,
        "group_column": args.group_column,
        "kind": None if args.kind == "auto" else args.kind,
    }
    recorded = {k: v for k, v in recorded.items() if v}
    common = {
        "clips": args.clips,
        "store": args.store,
        "batch_size": args.batch_size,
        "precision": args.precision,
    }
    if args.splits:
        from harkit.experiments.splits import evaluate_splits

        if args.split is not None:
            raise ConfigError(
                f"--split {args.split} and --splits: give one (with --splits each "
                "RUN/split<k> is tested on its own split k)"
            )
        official = isinstance(args.splits, list)
        summary = evaluate_splits(
            args.run,
            args.splits if official else None,
            dataset=config,
            out_dir=args.out,
            cross_validation=None if official else args.splits,
            recorded_overrides=recorded,
            **common,
        )
        print_splits_summary(summary, args.clips)
        return 0
    from harkit.experiments.evaluate import evaluate_run

    result = evaluate_run(args.run, config, out_dir=args.out, recorded_overrides=recorded, **common)
    line = f"clip-level top-1 {100 * result.clip.top1:.2f}%"
    if result.video is not None:
        line += f", video-level top-1 {100 * result.video.top1:.2f}%"
    if result.coverage is not None:  # the metrics are over the videos that could be read
        from harkit.evaluate.reports import coverage_text

        line += f" ({coverage_text(result.coverage)})"
    print(f"{line} -> {result.files.get('report', args.out or args.run / 'report')}")
    return 0
