"""``harkit extract``: CNN features of a dataset into feature stores (resumable, torchrun-able)."""

from __future__ import annotations

import argparse
import json
import sys

from harkit.cli.args import (
    add_dataset_args,
    add_set_arg,
    dataset_config,
    device,
    folder,
    int_in_range,
    output_file,
    override,
)
from harkit.config import ConfigError, apply_overrides, parse_config
from harkit.data.datasets import load_index
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.models.recipe import FeatureSource


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract frozen-CNN features into feature stores",
        description="Decode every video once and store per-step features of each backbone. "
        "Resumable; under torchrun each rank takes a share of the videos.",
    )
    add_dataset_args(parser, positional=True)
    parser.add_argument("--store", type=folder, required=True, help="feature store root folder")
    parser.add_argument(
        "--backbone", action="append", default=[], metavar="NAME", help="repeat for several"
    )
    parser.add_argument(
        "--weights",
        help="imagenet (default) | kinetics | none | PATH, for every --backbone (a recipe's "
        "sources take --set input.features.N.weights=...)",
    )
    parser.add_argument("--layer", help="intermediate layer instead of the pooled output")
    parser.add_argument("--stream", choices=["rgb", "flow"], default="rgb")
    parser.add_argument("--recipe", help="take sources, sampling and transform from a recipe")
    add_set_arg(parser)
    parser.add_argument(
        "--sampling",
        nargs="+",
        default=[],
        type=override,
        metavar="KEY=VALUE",
        help="SamplingConfig fields, e.g. strategy=uniform num_frames=20",
    )
    parser.add_argument(
        "--flow-root",
        type=folder,
        help="flow files (harkit flow) for flow-stream sources; without it the "
        "sampled pairs' flow is computed here",
    )
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    parser.add_argument(
        "--engine",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="run frame backbones with PyTorch or onnxruntime (auto: on a CPU, the engine "
        "measured fastest on this CPU, cached under $HARKIT_CACHE/engines; ONNX graphs are "
        "cached under $HARKIT_CACHE/onnx)",
    )
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16", help="stored dtype")
    parser.add_argument(
        "--workers", type=int_in_range(0, 256), default=2, help="decoding processes"
    )
    parser.add_argument(
        "--batch-size", type=int_in_range(1, 4096), default=32, help="frames per network call"
    )
    parser.add_argument(
        "--device", type=device, help="cpu | cuda | cuda:N (default: cuda when available)"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the backbones (default: with --engine auto on a CPU, compiled "
        "PyTorch is one of the measured engines from 100 videos to extract with a C++ "
        "compiler present; --no-compile leaves it out)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="retry videos that failed")
    parser.add_argument(
        "--report", type=output_file(".json"), help="write the extraction report JSON here"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run_extract)


def resolve_sources(
    args: argparse.Namespace,
) -> tuple[list[FeatureSource], SamplingConfig, TransformConfig, str]:
    """Sources, sampling, transform and flow method from ``--recipe`` and/or ``--backbone``."""
    sampling_fields: dict = {}
    transform, flow_method = TransformConfig(), "tvl1"
    sources: list[FeatureSource] = []
    if args.overrides and not args.recipe:
        raise ConfigError("--set overrides a recipe's keys: give --recipe too")
    for flag in ("weights", "layer"):
        if args.recipe and not args.backbone and getattr(args, flag) is not None:
            raise ConfigError(
                f"--{flag} applies to --backbone sources; for the recipe's sources use --set "
                f"input.features.N.{flag}=..."
            )
    if args.recipe:
        from harkit.models.recipe import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        if not recipe.input.features:
            raise ConfigError(f"recipe {recipe.name!r} has no input.features to extract")
        sources = list(recipe.input.features)
        sampling_fields = recipe.input.sampling.model_dump()
        transform, flow_method = recipe.input.transform, recipe.input.flow_method
    if args.backbone:  # explicit backbones replace the recipe's
        sources = [
            parse_config(
                FeatureSource,
                {
                    "backbone": b,
                    "weights": args.weights or "imagenet",
                    "layer": args.layer,
                    "stream": args.stream,
                },
                source="command line",
            )
            for b in args.backbone
        ]
    if not sources:
        raise ConfigError("give --backbone NAME (repeatable) or --recipe NAME")
    sampling = parse_config(
        SamplingConfig, apply_overrides(sampling_fields, args.sampling, "--sampling"), "--sampling"
    )
    return sources, sampling, transform, flow_method


def run_extract(args: argparse.Namespace) -> int:
    from harkit.features.pipeline import dataset_video_root, extract_features

    sources, sampling, transform, flow_method = resolve_sources(args)
    config = dataset_config(args)
    index = load_index(config)
    report = extract_features(
        index,
        sources,
        args.store,
        sampling,
        transform,
        dtype="float16" if args.dtype == "fp16" else "float32",
        precision=args.precision,
        engine=args.engine,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        compile=args.compile,
        flow_root=args.flow_root,
        flow_method=flow_method,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        video_root=dataset_video_root(config),  # the ids `harkit train` looks up
    )
    if args.report:
        from harkit.io import atomic_write_text

        atomic_write_text(args.report, json.dumps(report.to_dict(), indent=1) + "\n")
    prefix = f"rank {report.rank}/{report.world_size}: " if report.world_size > 1 else ""
    print(
        f"{prefix}{report.videos} videos: {report.extracted} extracted, {report.existing} already "
        f"done, {report.failed} failed ({report.steps} steps in {report.seconds:.1f} s)"
    )
    for key, path in report.stores.items():
        print(f"  {key} -> {path}")
    if report.failed and not report.extracted and not report.existing:
        print(
            f"harkit: no video could be extracted; reasons in {report.skip_report}", file=sys.stderr
        )
        return 1
    return 0
