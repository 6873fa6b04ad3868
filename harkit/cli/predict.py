"""``harkit predict RUN VIDEO_OR_FOLDER...``: label videos with a trained run.

Output: one line per video, ``<file>  <label> <confidence>`` followed by the top-k list and
seed 004's ``Class: <label>, Confidence: <p>`` line; with ``--json``, one JSON object per
video (``{"source", "label", "confidence", "top_k"}``, or ``{"source", "error"}`` for a file
that could not be read). Unreadable files are reported on stderr and do not stop the run.

Exit status: 0 when at least one video was predicted (even if others were unreadable), 1 when
none could be, 2 for input errors (missing run folder, no weights, incompatible versions).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harkit.cli.args import device, folder, int_in_range
from harkit.data.datasets import list_videos
from harkit.data.video import FRAME_EXTENSIONS
from harkit.errors import HarkitError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="recognise the action in video files or folders",
        description="Label videos with a trained run folder. Exit status: 0 if at least one "
        "video was predicted, 1 if none could be, 2 on input errors.",
    )
    p.add_argument("run", type=Path, help="trained run folder")
    p.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_FOLDER")
    p.add_argument("--top-k", type=int_in_range(1, 1000), default=5,
                   help="classes listed per video (default 5)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--paper-style", action="store_true",
                   help="seed 004's line per video: 'Class: Diving, Confidence: 0.98'")
    p.add_argument("--batch-size", type=int_in_range(1, 4096), default=8,
                   help="videos per CNN batch (default 8)")
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch")
    p.add_argument("--onnx-dir", type=folder, help="exported files (default RUN/onnx)")
    p.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N | mps")
    p.add_argument("--no-fast", action="store_true", help="plain fp32 CNN (no fast path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_predict)


def collect_videos(inputs: list[Path]) -> list[Path]:
    """Files as given; folders searched recursively for video files (a folder of frame
    images counts as one video)."""
    out: list[Path] = []
    for item in inputs:
        if not item.is_dir():
            out.append(item)  # missing files are reported per file, like unreadable ones
            continue
        try:
            if any(p.suffix.lower() in FRAME_EXTENSIONS for p in item.iterdir() if p.is_file()):
                out.append(item)
                continue
            # FIFOs, sockets and broken links named like videos are listed too: the reader
            # reports each with its reason instead of opening it
            found = list_videos(item, recursive=True)
        except OSError:
            out.append(item)  # unreadable folder: the reader reports why
            continue
        if not found:
            raise HarkitError(f"{item}: no video files inside")
        out.extend(found)
    return out


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harkit.infer.recognizer import Recognizer

    videos = collect_videos(args.inputs)
    recognizer = Recognizer.from_run(
        args.run, device=args.device, engine=args.engine, fast=not args.no_fast,
        onnx_dir=args.onnx_dir,
    )  # fmt: skip
    show_bar = not args.no_progress and (len(videos) > 1 or any(p.is_dir() for p in args.inputs))
    bar = tqdm(total=len(videos), unit="video", disable=not show_bar, file=sys.stderr)
    predicted = failed = 0
    width = max(len(str(v)) for v in videos)
    for pred in recognizer.predict_many(videos, batch_size=args.batch_size, top_k=args.top_k):
        bar.update(1)
        if not pred.ok:
            failed += 1
            bar.write(f"harkit: cannot read {pred.source}: {pred.error}", file=sys.stderr)
            if args.json:
                print(json.dumps(pred.to_dict()), flush=True)
            continue
        predicted += 1
        if args.json:
            print(json.dumps(pred.to_dict()), flush=True)
        elif args.paper_style:
            bar.write(f"{pred.source}: {pred.format()}", file=sys.stdout)
        else:
            others = "  ".join(f"{lab} {p:.2f}" for lab, p in pred.top_k[1:])
            line = f"{pred.source:<{width}}  {pred.label} {pred.confidence:.2f}"
            bar.write(line + (f"  ({others})" if others else ""), file=sys.stdout)
    bar.close()
    if failed:
        print(f"harkit: {failed} of {len(videos)} videos could not be read", file=sys.stderr)
    return 0 if predicted else 1
