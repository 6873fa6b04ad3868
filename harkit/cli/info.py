"""``harkit info``: list recipes, or show one recipe's summary and parameters per module."""

from __future__ import annotations

import argparse

from harkit.cli.args import add_set_arg, int_in_range


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="recipe summary and parameter counts (offline)")
    p.add_argument("--recipe", help="recipe name or YAML path")
    p.add_argument("--list", action="store_true", help="list the built-in recipes")
    p.add_argument(
        "--num-classes",
        type=int_in_range(1, 100_000),
        default=101,
        help="classes of the output layer",
    )
    add_set_arg(p)
    p.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from harkit.config import ConfigError
    from harkit.models.recipe import list_recipes, load_recipe

    if args.list:
        for name in list_recipes():
            print(name)
        return 0
    if not args.recipe:
        raise ConfigError("give --recipe NAME, or --list")
    from harkit.experiments.info import recipe_info

    print(recipe_info(load_recipe(args.recipe, args.overrides), args.num_classes))
    return 0
