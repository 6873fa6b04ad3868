"""Command-line arguments several verbs share: which dataset, recipe overrides, and the
``type=`` checkers every verb's arguments go through.

A checker refuses a bad value while argparse parses, so the user gets one line naming the
argument, the value and what is allowed (``harkit stream: error: argument --window: expected
an integer from 1 to 100000, got '-3'``) and exit status 2, before anything is loaded.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

from harkit.config import parse_config
from harkit.data.datasets import DatasetConfig

DATASET_KINDS = list(get_args(DatasetConfig.model_fields["kind"].annotation))

# Extensions the annotated-video writer (H.264 through PyAV) can mux into.
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi")
# Network schemes FFmpeg (PyAV) opens as live streams.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
MAX_CAMERA_INDEX = 1023
MAX_SEED = 2**32 - 1  # numpy / Lightning seeds are unsigned 32-bit
# An empty item in a comma list: "1,,2", ",1", "1,".
_EMPTY_ITEM = re.compile(r"(^|,)\s*(,|$)")
_OVERRIDE_KEY = re.compile(r"[A-Za-z_]\w*(\.(?:[A-Za-z_]\w*|\d+))*")  # list items by index


def _refuse(text: str, allowed: str, why: str = "") -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}{why}")


def _one_of(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def path_arg(text: str) -> Path:
    """A path; a blank one is refused (``Path("")`` would quietly be the current folder)."""
    if not text.strip():
        raise _refuse(text, "a path")
    return Path(text)


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An integer ``low <= n <= high`` (every count has a ceiling: absurd sizes are typos)."""
    allowed = f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _refuse(text, allowed) from None
        if not low <= value <= high:
            raise _refuse(text, allowed)
        return value

    return parse


def float_in_range(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A finite number between ``low`` and ``high``; ``*_open`` excludes that bound."""
    allowed = (
        f"a number {'>' if low_open else '>='} {low:g} and {'<' if high_open else '<='} {high:g}"
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _refuse(text, allowed) from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            raise _refuse(text, allowed)
        return value

    return parse


fraction = float_in_range(0.0, 1.0, low_open=True, high_open=True)
"""A share strictly between 0 and 1 (test or validation fraction)."""


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """A file the verb writes: its extension must be one the verb can write, and it must not
    be an existing folder."""
    allowed = f"a file name ending in {_one_of(suffixes)}"

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise _refuse(text, allowed)
        if path.is_dir():
            raise _refuse(text, allowed, ", which is a folder")
        return path

    return parse


def folder(text: str) -> Path:
    """A folder to read or write (run, store, output): anything but an existing file."""
    path = Path(text)
    if not text.strip():
        raise _refuse(text, "a folder")
    if path.exists() and not path.is_dir():
        raise _refuse(text, "a folder", ", which is a file")
    return path


def override(text: str) -> str:
    """``key.sub=value`` (the value is parsed as YAML later; the key is checked by the config)."""
    key, sep, _ = text.partition("=")
    if not sep or not _OVERRIDE_KEY.fullmatch(key.strip()):
        raise _refuse(text, "KEY=VALUE with a dotted key (e.g. head.hidden=512)")
    return text


def grid_axis(text: str) -> str:
    """``key.sub=v1,v2,...``: one axis of an ablation grid, no empty values."""
    key, sep, values = text.partition("=")
    if not sep or not _OVERRIDE_KEY.fullmatch(key.strip()) or _EMPTY_ITEM.search(values):
        raise _refuse(
            text, "KEY=V1,V2,... with a dotted key and no empty value (e.g. head.cell=gru,lstm)"
        )
    return text


_K_FOLD = re.compile(r"(\d+)-fold")


def split_list(text: str) -> list[int] | str | int:
    """``1,2,3`` (distinct official split numbers), ``leave-one-group-out`` or ``K-fold``
    (cross-validation by group: the value of ``DatasetConfig.cross_validation``)."""
    allowed = (
        "a comma-separated list of distinct split numbers from 1 to 25 (e.g. 1,2,3), "
        "leave-one-group-out, or K-fold with K from 2 to 100 (e.g. 5-fold)"
    )
    if text.strip() == "leave-one-group-out":
        return "leave-one-group-out"
    if fold := _K_FOLD.fullmatch(text.strip()):
        if not 2 <= int(fold.group(1)) <= 100:
            raise _refuse(text, allowed)
        return int(fold.group(1))
    if _EMPTY_ITEM.search(text):
        raise _refuse(text, allowed)
    parse = int_in_range(1, 25)
    try:
        splits = [parse(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise _refuse(text, allowed) from None
    if len(set(splits)) != len(splits):
        raise _refuse(text, allowed)
    return splits


def column_name(text: str) -> str:
    """A CSV column name: not empty (whether the manifest has it is checked when it is read)."""
    if not text.strip():
        raise _refuse(text, "a CSV column name")
    return text.strip()


def devices(text: str) -> int | str:
    """Lightning's devices per node: a count, or ``auto``."""
    if text == "auto":
        return text
    try:
        return int_in_range(1, 1024)(text)
    except argparse.ArgumentTypeError:
        raise _refuse(text, "an integer from 1 to 1024 or 'auto'") from None


def device(text: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    from harkit.infer.device import device_problem

    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def accelerator(text: str) -> str:
    """Lightning's accelerator (``auto``, ``cpu``, ``gpu``/``cuda``, ``mps``), if present."""
    choices = ("auto", "cpu", "gpu", "cuda", "mps")
    if text not in choices:
        raise _refuse(text, _one_of(choices))
    if text in ("gpu", "cuda", "mps"):
        _require_device("mps" if text == "mps" else "cuda")
    return text


def _require_device(text: str) -> None:
    from harkit.infer.device import device_problem

    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)


def stream_source(text: str) -> str:
    """A webcam index (0 to 1023), a stream URL with a scheme FFmpeg opens live, or a file
    path (whose existence the source itself reports)."""
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        allowed = f"a camera index from 0 to {MAX_CAMERA_INDEX}, a stream URL or a video file"
        try:
            return str(int_in_range(0, MAX_CAMERA_INDEX)(text.strip()))
        except argparse.ArgumentTypeError:
            raise _refuse(text, allowed) from None
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme.lower() not in STREAM_SCHEMES or not parts.netloc:
            raise _refuse(text, f"a URL SCHEME://HOST/... with SCHEME {_one_of(STREAM_SCHEMES)}")
    elif not text.strip():
        raise _refuse(text, "a camera index, a stream URL or a video file")
    return text


def add_dataset_args(
    parser: argparse.ArgumentParser,
    *,
    positional: bool = False,
    required: bool = True,
    split_options: bool = False,
) -> None:
    """The dataset as ``ROOT`` (``positional``) or ``--dataset ROOT``, plus ``--kind``,
    ``--annotations``, ``--split`` and ``--group-column``; ``split_options`` adds ``--test-fraction`` and
    ``--allow-leakage`` for verbs that build train/test splits."""
    help_ = "dataset folder or CSV manifest"
    if positional:
        parser.add_argument("dataset", type=path_arg, metavar="ROOT", help=help_)
    else:
        parser.add_argument("--dataset", type=path_arg, required=required, help=help_)
    parser.add_argument("--kind", default="auto", choices=DATASET_KINDS)
    parser.add_argument("--annotations", type=path_arg, help="split files (UCF101/HMDB51)")
    parser.add_argument(
        "--split",
        type=int_in_range(1, 25),
        help="official split number (UCF101/HMDB51: 1-3; UCF50: group 1-25; default 1)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="use the videos present when split files list missing ones",
    )
    parser.add_argument(
        "--group-column",
        type=column_name,
        metavar="NAME",
        help="CSV column naming each video's group (default: the first of "
        "group, actor, person, subject, performer)",
    )
    if split_options:
        parser.add_argument(
            "--test-fraction",
            type=fraction,
            default=0.2,
            help="group-aware test share for data without splits",
        )
        parser.add_argument(
            "--allow-leakage",
            action="store_true",
            help="accept a split with one group on both sides (not recommended)",
        )


def dataset_config(args: argparse.Namespace) -> DatasetConfig:
    """The :class:`DatasetConfig` the arguments of :func:`add_dataset_args` describe."""
    fields: dict[str, object] = {"kind": args.kind, "root": args.dataset}
    for name in (
        "split",
        "annotations",
        "test_fraction",
        "allow_leakage",
        "allow_missing",
        "group_column",
    ):
        if getattr(args, name, None):
            fields[name] = getattr(args, name)
    return parse_config(DatasetConfig, fields, source="command line")


def add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        "-s",
        dest="overrides",
        action="append",
        default=[],
        type=override,
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. head.hidden=512",
    )


def shown(path: object) -> str:
    """A file name as one line of a table: control characters (a newline in a name) escaped,
    everything else, accents included, as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def print_splits_summary(summary: dict, clips: int, recipe: str | None = None) -> None:
    """One line per split (its held-out groups in cross-validation), then the mean ± std
    (``harkit train --splits`` and ``harkit evaluate --splits`` print the same)."""
    held = summary.get("held_out") or {}
    for split in summary["splits"]:
        groups = f" (held out: {', '.join(held[split])})" if held.get(split) else ""
        print(f"split {split}{groups}: top-1 {100 * summary['per_split'][split]['top1']:.2f}%")
    for k, cov in (summary.get("coverage") or {}).items():
        if cov.get("skipped"):  # the mean leaves these videos out: say so
            print(f"split {k}: {cov['text']}")
    over = ",".join(summary["splits"])
    if summary.get("cross_validation"):
        over = f"{summary['cross_validation']} cross-validation folds {over}"
    else:
        over = f"splits {over}"
    views = f"{clips} clip{'s' if clips != 1 else ''} per video"
    mean, std = summary["mean"]["top1"], summary["std"]["top1"]
    print(
        f"{recipe + ': ' if recipe else ''}mean top-1 over {over} ({summary['level']}-level, "
        f"{views}): {100 * mean:.2f}% ± {100 * std:.2f}% -> {summary['report']}"
    )
