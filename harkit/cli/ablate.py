"""``harkit ablate``: a grid of recipe overrides (or several recipes), one comparison table."""

from __future__ import annotations

import argparse
from pathlib import Path

from harkit.cli.args import (
    add_dataset_args,
    add_set_arg,
    dataset_config,
    devices,
    folder,
    grid_axis,
    int_in_range,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ablate", help="train + test variants, write a comparison table")
    p.add_argument("recipes", nargs="*", help="recipe names to compare (e.g. ablations/...)")
    p.add_argument("--recipe", help="base recipe for --grid")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        type=grid_axis,
        metavar="KEY=V1,V2",
        help="values to try for one key; several --grid make the cartesian product",
    )
    add_set_arg(p)
    add_dataset_args(p, split_options=True)
    p.add_argument("--store", type=folder, help="feature store shared by every variant")
    p.add_argument("--out", type=folder, help="output folder (default: runs/ablate-<recipe>)")
    p.add_argument("--clips", type=int_in_range(1, 1000), default=1)
    p.add_argument("--devices", type=devices, default=1, help="devices per node (int, or 'auto')")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_ablate)


def run_ablate(args: argparse.Namespace) -> int:
    from harkit.config import ConfigError
    from harkit.experiments.ablate import ablate, grid_variants, parse_grid, recipe_variants

    if args.grid and not args.recipe:
        raise ConfigError("--grid needs --recipe (the base recipe the overrides apply to)")
    variants = []
    if args.recipe:
        variants += grid_variants(args.recipe, parse_grid(args.grid), args.overrides)
    variants += recipe_variants(args.recipes, args.overrides)
    if not variants:
        raise ConfigError("nothing to compare: give --recipe [--grid ...] or recipe names")
    out = args.out or Path("runs") / f"ablate-{Path(args.recipe or args.recipes[0]).stem}"
    rows = ablate(
        variants,
        dataset_config(args),
        out,
        store=args.store,
        clips=args.clips,
        devices=args.devices,
        progress=not args.no_progress,
    )
    for row in rows:
        print(
            f"{row['variant']}: top-1 {100 * row['top1']:.2f}%  F1 {100 * row['f1_macro']:.2f}%"
            f"  params {row['params']:,}"
        )
    print(f"table: {out / 'ablation.md'}")
    return 0
