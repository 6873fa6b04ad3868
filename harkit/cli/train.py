"""``harkit train``: train a recipe on a dataset split into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harkit.cli.args import (
    accelerator,
    add_dataset_args,
    add_set_arg,
    dataset_config,
    devices,
    folder,
    int_in_range,
    print_splits_summary,
    split_list,
)
from harkit.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a recipe into a run folder")
    p.add_argument("--recipe", required=True, help="recipe name (harkit info --list) or YAML path")
    add_dataset_args(p, split_options=True)
    p.add_argument("--store", type=folder, help="feature store folder (features mode)")
    p.add_argument("--run", type=folder, help="run folder (default: runs/<recipe>)")
    add_set_arg(p)
    p.add_argument("--devices", type=devices, default=1, help="devices per node (int, or 'auto')")
    p.add_argument("--num-nodes", type=int_in_range(1, 1024), default=1)
    p.add_argument(
        "--accelerator",
        default="auto",
        type=accelerator,
        help="auto, cpu, gpu/cuda or mps (default auto)",
    )
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.ckpt")
    p.add_argument(
        "--splits",
        type=split_list,
        default=[],
        help="train + evaluate each official split (e.g. 1,2,3), or cross-validate data "
        "without them by group: leave-one-group-out (one fold per group: person, actor, "
        "source video) or K-fold (e.g. 5-fold); report the mean ± std",
    )
    p.add_argument(
        "--clips",
        type=int_in_range(1, 1000),
        default=1,
        help="views per test video (with --splits)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from harkit.models.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    config = dataset_config(args)
    run_dir = args.run or Path("runs") / recipe.name
    kwargs = {
        "store": args.store,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "accelerator": args.accelerator,
        "progress": not args.no_progress,
    }
    splits = args.splits
    if splits:
        from harkit.experiments.splits import train_and_evaluate

        if args.resume:
            raise ConfigError("--resume works on one run folder; resume each RUN/splitK instead")
        if not isinstance(splits, list):  # cross-validation by group: every fold
            config = config.model_copy(update={"cross_validation": splits})
            splits = None
        summary = train_and_evaluate(
            recipe, config, run_dir, splits=splits, clips=args.clips, **kwargs
        )
        print_splits_summary(summary, args.clips, recipe.name)
        return 0
    from harkit.train.trainer import train

    if args.resume:
        from harkit.train.run import resume_recipe

        recipe = resume_recipe(recipe, run_dir, args.overrides)
    info = train(recipe, config, run_dir, resume=args.resume, **kwargs).info
    if info is not None and info.exported is not None:  # the process that wrote the run
        best = info.best_score
        score = f", val/acc {100 * best:.2f}%" if best is not None else ""
        print(
            f"trained {recipe.name} -> {run_dir} ({info.epochs_run} epochs; exported "
            f"{info.exported.checkpoint}: {info.exported.reason}{score})"
        )
        print(json.dumps(info.counts.model_dump() if info.counts else {}))
    return 0
