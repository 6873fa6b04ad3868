"""``harkit data``: synthesise, download, inspect and split datasets."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

from harkit.cli.args import (
    MAX_SEED,
    add_dataset_args,
    dataset_config,
    folder,
    fraction,
    int_in_range,
    output_file,
    override,
)
from harkit.config import apply_overrides, parse_config
from harkit.data.datasets import DatasetConfig, load_index
from harkit.data.inspect import summarize
from harkit.io import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthesise, download, inspect and split datasets")
    verbs = data.add_subparsers(dest="data_command", metavar="VERB", required=True)

    synth = verbs.add_parser("synth", help="render the built-in synthetic action dataset")
    synth.add_argument("out", type=folder, help="output folder")
    synth.add_argument(
        "--set",
        "-s",
        dest="overrides",
        action="append",
        default=[],
        type=override,
        metavar="KEY=VALUE",
        help="override a SynthConfig field, e.g. -s num_actors=8 -s container=avi",
    )
    synth.set_defaults(func=run_synth)

    download = verbs.add_parser(
        "download", help="fetch, verify and extract UCF101, HMDB51 or UCF50 (resumable)"
    )
    download.add_argument(
        "name",
        choices=["ucf101", "hmdb51", "ucf50"],
        metavar="NAME",
        help="ucf101, hmdb51 or ucf50",
    )
    download.add_argument(
        "root",
        type=folder,
        metavar="ROOT",
        help="folder the archives and the extracted dataset go in",
    )
    download.add_argument(
        "--from",
        dest="from_dir",
        type=folder,
        metavar="DIR",
        help="use the archives already in DIR instead of downloading "
        "(for machines without internet)",
    )
    download.set_defaults(func=run_download)

    inspect = verbs.add_parser("inspect", help="classes, counts, groups, durations, bad files")
    add_dataset_args(inspect, positional=True)
    inspect.add_argument(
        "--json", type=output_file(".json"), help="also write the summary as JSON here"
    )
    inspect.add_argument("--no-probe", action="store_true", help="skip opening every video")
    inspect.set_defaults(func=run_inspect)

    split = verbs.add_parser("split", help="write a group-aware train/test manifest")
    add_dataset_args(split, positional=True)
    split.add_argument(
        "--out", type=output_file(".csv"), required=True, help="manifest CSV to write"
    )
    split.add_argument("--test-fraction", type=fraction, default=0.2)
    split.add_argument("--seed", type=int_in_range(0, MAX_SEED), default=0)
    split.set_defaults(func=run_split)


def run_synth(args: argparse.Namespace) -> int:
    from harkit.synth import SynthConfig, render_dataset

    config = parse_config(SynthConfig, apply_overrides({}, args.overrides), "--set")
    manifest = render_dataset(args.out, config)
    print(f"wrote {manifest}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from harkit.data.download import download_dataset

    result = download_dataset(
        args.name, args.root, from_dir=args.from_dir, progress=sys.stderr.isatty()
    )
    config = DatasetConfig(kind=result.kind, root=result.videos, annotations=result.annotations)
    print(summarize(load_index(config), probe_videos=False).to_text())
    options = f"--kind {result.kind}"
    if result.annotations is not None:
        options += f" --annotations {result.annotations}"
    print(f"ready: harkit data inspect {result.videos} {options}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from harkit.data.splits import leakage_status, leaked_groups

    index = load_index(dataset_config(args))
    summary = summarize(index, probe_videos=not args.no_probe)
    print(summary.to_text())
    leaked = leaked_groups(index)
    if any(item.split for item in index):
        status = leakage_status(index)
        if leaked:
            status = f"LEAKS {len(leaked)} groups: {', '.join(leaked[:10])}"
        elif status.startswith("checked"):
            status = "no leakage" + status.partition(")")[2]  # keeps "; N videos without..."
        print(f"split check: {status}")
    if args.json:
        payload = {**summary.to_dict(), "leaked_groups": leaked}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from harkit.data.splits import group_split, leakage_status

    index = group_split(load_index(dataset_config(args)), args.test_fraction, args.seed)
    base = args.out.resolve().parent
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "split", "group"])
    for item in index:
        path = Path(os.path.relpath(item.path.resolve(), base))
        writer.writerow([path.as_posix(), item.label, item.split, item.group or ""])
    atomic_write_text(args.out, buffer.getvalue())
    index.save_classes(base / "classes.json")
    counts = {s: sum(1 for it in index if it.split == s) for s in ("train", "test")}
    status = leakage_status(index)
    if status.startswith("checked"):
        status = "no group on both sides" + status.partition(")")[2]
    print(f"wrote {args.out}: train {counts['train']}, test {counts['test']}, {status}")
    return 0
