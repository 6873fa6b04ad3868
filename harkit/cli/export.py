"""``harkit export RUN --format onnx|torchscript [--out DIR]``: the frame encoder(s) and the
temporal head as separate graphs, parity-checked against PyTorch."""

from __future__ import annotations

import argparse
import json

from harkit.cli.args import float_in_range, folder, int_in_range, path_arg
from harkit.onnx import OPSET, OPSET_RANGE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a run's encoder and head to ONNX or TorchScript",
        description="Writes encoder_*.onnx (dynamic batch), head.onnx (dynamic batch and time; "
        "full-length sequences) and export.json; default folder RUN/onnx, which "
        "'harkit predict --engine onnx' uses.",
    )
    p.add_argument("run", type=path_arg, help="trained run folder")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", type=folder, help="output folder (default RUN/<format>)")
    p.add_argument(
        "--opset",
        type=int_in_range(*OPSET_RANGE),
        default=OPSET,
        help=f"ONNX opset (default {OPSET})",
    )
    p.add_argument(
        "--tolerance",
        type=float_in_range(0, 1, low_open=True),
        default=1e-3,
        help="fail when PyTorch and the export differ by more (default 1e-3)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--flow-config",
        type=path_arg,
        metavar="PATH",
        help="flow-stream runs: the flow_config.json (or flow folder) training used; "
        "recorded in export.json (the flow itself is computed in Python)",
    )
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from harkit.infer.export import export_run

    report = export_run(
        args.run,
        args.out,
        args.format,
        opset=args.opset,
        check=not args.no_check,
        tolerance=args.tolerance,
        flow=args.flow_config,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(f"exported {args.run} ({args.format}) to {report.out_dir} in {report.seconds:.1f} s")
    for name in report.files:
        print(f"  {name}")
    for name, diff in report.max_abs_diff.items():
        print(f"  parity {name}: max abs diff {diff:.2e}")
    return 0
