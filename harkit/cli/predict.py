"""``harkit predict RUN VIDEO_OR_FOLDER...``: label videos with a trained run.

Output: one line per video, ``<file>  <label> <confidence>`` followed by the top-k list and
seed 004's ``Class: <label>, Confidence: <p>`` line; with ``--json``, one JSON object per
video (``{"source", "label", "confidence", "top_k"}``, or ``{"source", "error"}`` for a file
that could not be read). Unreadable files are reported on stderr and do not stop the run.

``--clips N`` averages the softmax of N windows evenly spaced over each video (video-level
prediction; 1 = the whole video sampled once, the default); a video with fewer distinct
windows than N gets one view per window (a note on stderr, ``"note"`` in JSON).
``--segments`` slides the run's training clip window over each video (``--window`` /
``--stride`` in seconds; default one training clip and half of it; a stride longer than the
window is refused: it would leave time no window looks at) and prints per-window labels
merged into ``[start, end, label]`` segments; ``--segments-out FOLDER`` (created and checked
before any video is read) writes ``<video>.segments.json``, ``.segments.csv`` and
``.windows.csv`` there. Flow-stream runs (two-stream I3D) compute the flow of the frames with
the settings training used (``--flow-config`` gives the flow folder's ``flow_config.json``).

Exit status: 0 when at least one video was predicted (even if others were unreadable), 1 when
none could be, 2 for input errors (missing run folder, no weights, incompatible versions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harkit.cli.args import device, float_in_range, folder, int_in_range, path_arg, shown
from harkit.data.datasets import list_videos
from harkit.data.video import FRAME_EXTENSIONS
from harkit.errors import HarkitError


class UsageError(HarkitError):
    """Options that do not go together (exit status 2, one line)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from harkit.flow.methods import FLOW_METHODS

    p = subparsers.add_parser(
        "predict",
        help="recognise the action in video files or folders",
        description="Label videos with a trained run folder. Exit status: 0 if at least one "
        "video was predicted, 1 if none could be, 2 on input errors.",
    )
    p.add_argument("run", type=path_arg, help="trained run folder")
    p.add_argument("inputs", nargs="+", type=path_arg, metavar="VIDEO_OR_FOLDER")
    p.add_argument(
        "--top-k",
        type=int_in_range(1, 1000),
        default=5,
        help="classes listed per video (default 5)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument(
        "--paper-style",
        action="store_true",
        help="seed 004's line per video: 'Class: Diving, Confidence: 0.98'",
    )
    p.add_argument(
        "--batch-size",
        type=int_in_range(1, 4096),
        default=8,
        help="videos per CNN batch (default 8)",
    )
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch")
    p.add_argument("--onnx-dir", type=folder, help="exported files (default RUN/onnx)")
    p.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N | mps")
    p.add_argument("--no-fast", action="store_true", help="plain fp32 CNN (no fast path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--clips",
        type=int_in_range(1, 1000),
        default=1,
        metavar="N",
        help="average N windows evenly spaced over each video (default 1: the whole video once)",
    )
    p.add_argument(
        "--segments",
        action="store_true",
        help="label windows slid over each video and merge them into segments",
    )
    p.add_argument(
        "--window",
        type=float_in_range(0, 86_400, low_open=True),
        metavar="SECONDS",
        help="--segments: window length (default: one training clip of the run)",
    )
    p.add_argument(
        "--stride",
        type=float_in_range(0, 86_400, low_open=True),
        metavar="SECONDS",
        help="--segments: window step, at most the window (default: half a window)",
    )
    p.add_argument(
        "--segments-out",
        type=folder,
        metavar="FOLDER",
        help="--segments: write <video>.segments.json/.segments.csv/.windows.csv here",
    )
    p.add_argument(
        "--flow-config",
        type=path_arg,
        metavar="PATH",
        help="flow-stream runs: the flow_config.json (or flow folder) training used "
        "(default: run.json's, else the recipe's method with `harkit flow` defaults)",
    )
    p.add_argument(
        "--flow-method",
        choices=list(FLOW_METHODS),
        help="flow-stream runs: another flow method than training's (warns)",
    )
    p.set_defaults(func=run_predict)


def _check_options(args: argparse.Namespace) -> None:
    """Options that only make sense together: a one-line usage error otherwise."""
    if args.segments and args.clips > 1:
        raise UsageError("--clips and --segments exclude each other (choose one)")
    for name in ("window", "stride", "segments_out"):
        if getattr(args, name) is not None and not args.segments:
            raise UsageError(f"--{name.replace('_', '-')} needs --segments")
    if args.window is not None and args.stride is not None and args.stride > args.window:
        raise UsageError(
            f"--stride {args.stride:g} is longer than --window {args.window:g}: windows would "
            "leave gaps no window looks at; expected a stride <= the window"
        )
    if args.segments_out is not None:
        _check_output_folder(args.segments_out)


def _check_output_folder(path: Path) -> None:
    """``--segments-out``: created and writable before any video is read."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"--segments-out {path}: cannot create the folder ({reason}); expected a "
            "writable folder"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--segments-out {path}: not writable; expected a writable folder")


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

    _check_options(args)
    videos = collect_videos(args.inputs)
    recognizer = Recognizer.from_run(
        args.run,
        device=args.device,
        engine=args.engine,
        fast=not args.no_fast,
        onnx_dir=args.onnx_dir,
        flow=args.flow_config,
        flow_method=args.flow_method,
    )
    if args.segments:
        return run_segments(args, recognizer, videos)
    show_bar = not args.no_progress and (len(videos) > 1 or any(p.is_dir() for p in args.inputs))
    bar = tqdm(total=len(videos), unit="video", disable=not show_bar, file=sys.stderr)
    predicted = failed = 0
    width = max(len(shown(v)) for v in videos)
    preds = recognizer.predict_many(
        videos, batch_size=args.batch_size, top_k=args.top_k, views=args.clips
    )
    for pred in preds:
        bar.update(1)
        if not pred.ok:
            failed += 1
            bar.write(f"harkit: cannot read {shown(pred.source)}: {pred.error}", file=sys.stderr)
            if args.json:
                print(json.dumps(pred.to_dict()), flush=True)
            continue
        predicted += 1
        if pred.note:
            bar.write(f"harkit: {shown(pred.source)}: {pred.note}", file=sys.stderr)
        if args.json:
            print(json.dumps(pred.to_dict()), flush=True)
        elif args.paper_style:
            bar.write(f"{shown(pred.source)}: {pred.format()}", file=sys.stdout)
        else:
            others = "  ".join(f"{lab} {p:.2f}" for lab, p in pred.top_k[1:])
            line = f"{shown(pred.source):<{width}}  {pred.label} {pred.confidence:.2f}"
            bar.write(line + (f"  ({others})" if others else ""), file=sys.stdout)
    bar.close()
    if failed:
        print(f"harkit: {failed} of {len(videos)} videos could not be read", file=sys.stderr)
    return 0 if predicted else 1


def _out_names(videos: list[Path]) -> list[str]:
    """A file prefix per video: its name, numbered where two videos share one."""
    names = [v.name or "video" for v in videos]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f"{name}.{seen[name]}")
    return out


def run_segments(args: argparse.Namespace, recognizer, videos: list[Path]) -> int:
    """``--segments``: per-window labels and merged segments of each video."""
    from harkit.data.video import VideoReadError
    from harkit.infer.errors import InferenceError, WindowError
    from harkit.infer.windows import write_segments

    if args.window is None and recognizer.clip_window(25.0) is None:
        raise UsageError(
            f"{args.run} records no training clip length (run.json has no train_clips and its "
            "dataset is not readable here): give the window with --window SECONDS"
        )
    done = failed = 0
    for video, name in zip(videos, _out_names(videos), strict=True):
        try:
            result = recognizer.predict_segments(
                video, window=args.window, stride=args.stride, top_k=args.top_k
            )
        except WindowError as exc:  # an argument error (e.g. --stride > the run's window)
            raise UsageError(str(exc)) from None
        except (VideoReadError, InferenceError, OSError, ValueError, MemoryError) as exc:
            # a bad video is reported; the others go on
            failed += 1
            reason = getattr(exc, "reason", None) or " ".join(str(exc).split())
            print(f"harkit: cannot read {shown(video)}: {reason}", file=sys.stderr)
            if args.json:
                print(json.dumps({"source": str(video), "error": reason}), flush=True)
            continue
        done += 1
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            print(result.table(), flush=True)
        if args.segments_out is not None:
            files = write_segments(result, args.segments_out / name)
            print(f"  -> {', '.join(str(f) for f in files)}", file=sys.stderr)
    if failed:
        print(f"harkit: {failed} of {len(videos)} videos could not be read", file=sys.stderr)
    return 0 if done else 1
