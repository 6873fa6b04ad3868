"""``harkit flow``: compute optical flow files for a dataset (resumable, sharded by rank)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harkit.cli.args import add_dataset_args, dataset_config, folder, int_in_range, path_arg
from harkit.data.datasets import DatasetConfig, VideoIndex, load_index


def register(subparsers: argparse._SubParsersAction) -> None:
    from harkit.data.video import _BACKENDS
    from harkit.flow.methods import FLOW_METHODS

    flow = subparsers.add_parser(
        "flow",
        help="compute optical flow (uint8 x/y, one .npz per video) for a dataset",
        description=(
            "Flow between consecutive frames (or every --stride-th frame) of every video, "
            "stored under OUT mirroring the dataset tree. Re-running skips finished videos; "
            "unreadable ones are listed in OUT/flow_skipped*.json. Under torchrun (RANK, "
            "WORLD_SIZE set) each rank takes its own share of the videos."
        ),
    )
    add_dataset_args(flow, positional=True)
    flow.add_argument("--out", type=folder, required=True, help="flow output folder")
    flow.add_argument("--method", default="tvl1", choices=list(FLOW_METHODS))
    flow.add_argument(
        "--size",
        type=int_in_range(16, 4096),
        default=256,
        help="shorter side of the working frames (default 256)",
    )
    flow.add_argument("--native-size", action="store_true", help="compute at the video's own size")
    flow.add_argument(
        "--stride", type=int_in_range(1, 1000), default=1, help="flow between every N-th frame"
    )
    flow.add_argument(
        "--max-frames",
        type=int_in_range(2, 10**8),
        help="at most this many frames per video (a pair at least)",
    )
    flow.add_argument(
        "--workers",
        type=int_in_range(0, 256),
        default=os.cpu_count() or 1,
        help="processes (0: in this one)",
    )
    flow.add_argument(
        "--rank", type=int_in_range(0, 65535), help="this worker's rank (default: $RANK or 0)"
    )
    flow.add_argument(
        "--world-size",
        type=int_in_range(1, 65536),
        help="number of ranks (default: $WORLD_SIZE or 1)",
    )
    flow.add_argument("--weights", type=path_arg, help="local RAFT weights file (raft-* only)")
    flow.add_argument(
        "--backend", default="auto", choices=["auto", *_BACKENDS], help="video reader backend"
    )
    flow.add_argument("--overwrite", action="store_true", help="recompute existing flow files")
    flow.add_argument("--no-progress", action="store_true", help="no progress bar")
    flow.set_defaults(func=run_flow)


def _video_root(config: DatasetConfig, index: VideoIndex) -> Path | None:
    """The dataset folder (a manifest's folder for CSV), if it holds every video."""
    root = Path(config.root)
    if root.suffix.lower() == ".csv" or root.is_file():
        root = root.parent
    root = Path(os.path.abspath(root))
    for item in index:
        if not Path(os.path.abspath(item.path)).is_relative_to(root):
            return None  # fall back to the deepest common folder of the videos
    return root


def run_flow(args: argparse.Namespace) -> int:
    from harkit.flow.extract import compute_dataset_flow

    config = dataset_config(args)
    index = load_index(config)
    sampling = None
    if args.stride > 1 or args.max_frames:
        sampling = {
            "strategy": "stride" if args.stride > 1 else "all",
            "stride": args.stride,
            "max_frames": args.max_frames,
        }
    summary = compute_dataset_flow(
        index,
        args.out,
        args.method,
        size=None if args.native_size else args.size,
        sampling=sampling,
        weights=args.weights,
        backend=args.backend,
        video_root=_video_root(config, index),
        num_workers=args.workers,
        rank=args.rank,
        world_size=args.world_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    rate = summary.pairs / summary.seconds if summary.seconds > 0 else 0.0
    shard = f" (rank {summary.rank}/{summary.world_size})" if summary.world_size > 1 else ""
    print(
        f"flow{shard}: {summary.videos} videos, {summary.computed} computed "
        f"({summary.pairs} pairs, {rate:.1f} pairs/s), {summary.existing} already done, "
        f"{summary.skipped} skipped"
        + (f" (see {summary.skip_report})" if summary.skipped else "")
        + f" -> {args.out}"
    )
    return 0
