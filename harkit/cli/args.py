"""Command-line arguments several verbs share: which dataset, and recipe overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from harkit.config import parse_config
from harkit.data.datasets import DatasetConfig

DATASET_KINDS = list(get_args(DatasetConfig.model_fields["kind"].annotation))


def add_dataset_args(
    parser: argparse.ArgumentParser,
    *,
    positional: bool = False,
    required: bool = True,
    split_options: bool = False,
) -> None:
    """The dataset as ``ROOT`` (``positional``) or ``--dataset ROOT``, plus ``--kind``,
    ``--annotations`` and ``--split``; ``split_options`` adds ``--test-fraction`` and
    ``--allow-leakage`` for verbs that build train/test splits."""
    help_ = "dataset folder or CSV manifest"
    if positional:
        parser.add_argument("dataset", type=Path, metavar="ROOT", help=help_)
    else:
        parser.add_argument("--dataset", type=Path, required=required, help=help_)
    parser.add_argument("--kind", default="auto", choices=DATASET_KINDS)
    parser.add_argument("--annotations", type=Path, help="split files (UCF101/HMDB51)")
    parser.add_argument("--split", type=int, default=1, help="official split number")
    if split_options:
        parser.add_argument("--test-fraction", type=float, default=0.2,
                            help="group-aware test share for data without splits")
        parser.add_argument("--allow-leakage", action="store_true",
                            help="accept a split with one group on both sides (not recommended)")


def dataset_config(args: argparse.Namespace) -> DatasetConfig:
    """The :class:`DatasetConfig` the arguments of :func:`add_dataset_args` describe."""
    fields: dict[str, object] = {"kind": args.kind, "root": args.dataset, "split": args.split}
    for name in ("annotations", "test_fraction", "allow_leakage"):
        if getattr(args, name, None):
            fields[name] = getattr(args, name)
    return parse_config(DatasetConfig, fields, source="command line")


def add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe key, e.g. head.hidden=512")
