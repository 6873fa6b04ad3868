"""``harkit reproduce``: a paper's table (paper vs harkit, mean ± std over official splits)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harkit.cli.args import (
    DATASET_KINDS,
    accelerator,
    add_set_arg,
    devices,
    folder,
    int_in_range,
    path_arg,
    split_list,
)
from harkit.config import parse_config
from harkit.data.datasets import DatasetConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="train + evaluate a recipe on every official split, paper vs harkit table",
        description="Extract the features once, train and evaluate each official split "
        "(UCF101/HMDB51: 1-3, UCF50: leave-one-group-out 1-25) and, with --ablations, the "
        "recipe's ablations; write OUT/reproduce.md/.json/.csv. Re-running continues an "
        "interrupted reproduction: finished splits are kept, interrupted ones resume.",
    )
    p.add_argument("recipe", help="recipe name (harkit info --list) or YAML path")
    p.add_argument("--dataset", type=path_arg, required=True, help="benchmark video root")
    p.add_argument("--kind", default="auto", choices=DATASET_KINDS)
    p.add_argument("--annotations", type=path_arg, help="split files (UCF101/HMDB51)")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="use the videos present when split files list missing ones (the table says "
        "how many were used)",
    )
    p.add_argument("--store", type=folder, help="feature store (default: OUT/features)")
    p.add_argument("--flow-root", type=folder, help="flow files (harkit flow) for flow streams")
    p.add_argument("--out", type=folder, help="output folder (default: runs/reproduce-<recipe>)")
    p.add_argument(
        "--ablations",
        action="store_true",
        help="also the ablations/*.yaml (built-in, or beside the recipe file) whose base is it",
    )
    p.add_argument(
        "--splits",
        type=split_list,
        help="only these official splits, e.g. 1 or 1,2 (default: all); on data without "
        "them, leave-one-group-out or K-fold cross-validation by group",
    )
    add_set_arg(p)
    p.add_argument(
        "--clips",
        type=int_in_range(1, 1000),
        default=1,
        help="views per test video (video-level metrics when > 1)",
    )
    p.add_argument("--devices", type=devices, default=1, help="devices per node (int, or 'auto')")
    p.add_argument(
        "--accelerator",
        default="auto",
        type=accelerator,
        help="auto, cpu, gpu/cuda or mps (default auto)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    from harkit.experiments.reproduce import reproduce

    fields: dict[str, object] = {"kind": args.kind, "root": args.dataset}
    if args.annotations:
        fields["annotations"] = args.annotations
    if args.allow_missing:
        fields["allow_missing"] = True
    splits = args.splits
    if splits is not None and not isinstance(splits, list):  # cross-validation by group
        fields["cross_validation"], splits = splits, None
    config = parse_config(DatasetConfig, fields, source="command line")
    out = args.out or Path("runs") / f"reproduce-{Path(args.recipe).stem}"
    table = reproduce(
        args.recipe,
        config,
        out,
        splits=splits,
        store=args.store,
        ablations=args.ablations,
        overrides=args.overrides,
        clips=args.clips,
        flow_root=args.flow_root,
        progress=not args.no_progress,
        devices=args.devices,
        accelerator=args.accelerator,
    )
    for row in table["rows"]:
        paper = row["paper_top1"]
        paper_text = (
            "no paper number"
            if paper is None
            else (
                f"paper {100 * paper:.2f}%"
                + ("" if row["paper_comparable"] else " (reference only)")
            )
        )
        print(
            f"{row['recipe']}: harkit {100 * row['top1_mean']:.2f}% ± "
            f"{100 * row['top1_std']:.2f}% over {row['splits_done']} split(s), {paper_text}"
        )
    print(f"table: {out / 'reproduce.md'}")
    return 0
