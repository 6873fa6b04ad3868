"""``harkit stream RUN --source FILE|CAMERA_INDEX|URL``: recognise actions continuously.

Prints a line whenever the shown label changes (or every decision as JSON lines with
``--json``, then a ``{"type": "summary"}`` line with fps, latency p50/p95, dropped frames and
reconnects). Until the stream has taken ``--warmup`` sampled steps (default: the window, a
training clip's steps) a decision has no label: ``warming up (3/16 steps)``, ``"label": null``
and ``"warming_up": true`` in JSON. The end of a file gives a final decision (``"final":
true``); on a file sampled as predict samples it, that is predict's answer.
Exit status: 0 when the stream was recognised until its end, 2 when the source
cannot be opened (missing file or camera, unreachable URL) or the run is unusable.
Flow-stream runs (two-stream I3D) compute the flow of consecutive frames as they arrive and
decide once a segment's flow is complete (one frame after its last RGB frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harkit.cli.args import (
    VIDEO_OUTPUT_EXTENSIONS,
    device,
    float_in_range,
    int_in_range,
    output_file,
    path_arg,
    stream_source,
)

if TYPE_CHECKING:
    import numpy as np

    from harkit.infer.smoothing import Decision


def register(subparsers: argparse._SubParsersAction) -> None:
    from harkit.flow.methods import FLOW_METHODS

    p = subparsers.add_parser(
        "stream",
        help="recognise actions continuously on a file, webcam or network stream",
        description="Continuous recognition. Streamable models (unidirectional heads) keep the "
        "recurrent state and do O(1) work per frame; others re-run the head over a window. "
        "No label before the window holds a training clip's steps (--warmup); the end of a "
        "file gives its final answer (predict's, on a file of up to two training clips).",
    )
    p.add_argument("run", type=path_arg, help="trained run folder")
    p.add_argument(
        "--source",
        required=True,
        type=stream_source,
        help="video file, webcam index (0) or URL (rtsp://, http://, ...)",
    )
    p.add_argument("--json", action="store_true", help="every decision as a JSON line")
    p.add_argument(
        "--output",
        type=output_file(*VIDEO_OUTPUT_EXTENSIONS),
        help="write an annotated video here (.mp4, .mkv, .mov or .avi)",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="play a file at its native frame rate (dropping frames when behind)",
    )
    p.add_argument("--mode", choices=["auto", "incremental", "windowed"], default="auto")
    p.add_argument(
        "--window",
        type=int_in_range(1, 100_000),
        help="steps per window / state reset period (default: the run's frames per training clip)",
    )
    p.add_argument(
        "--hop", type=int_in_range(1, 100_000), default=4, help="windowed: decide every N steps"
    )
    p.add_argument(
        "--frame-jump",
        type=int_in_range(1, 1000),
        metavar="J",
        help="sample every J-th frame. Default: from the run's training clips: N frames "
        "sampled uniformly over clips of ~F frames -> J = round(F / N) (F: run.json's "
        "train_clips, else the median of its training videos, rescaled to the source's "
        "fps; e.g. 16 over ~64 -> 4); a file of up to two training clips is sampled exactly "
        "as predict samples it. Another value makes each step span another time than in "
        "training, so the model sees motion at another speed (1 instead of 4: 4x slower) "
        "and its answer changes; the plan line says which jump and why",
    )
    p.add_argument(
        "--warmup",
        type=int_in_range(0, 100_000),
        metavar="STEPS",
        help="sampled steps before the first label (default: the window, one training "
        "clip's steps; 0: label from the first step); earlier decisions print "
        "'warming up (k/STEPS steps)', label null in JSON",
    )
    p.add_argument(
        "--reset",
        choices=["staggered", "periodic", "none"],
        default="staggered",
        help="recurrent state reset policy (default staggered)",
    )
    p.add_argument(
        "--smoothing",
        type=float_in_range(0, 1, high_open=True),
        default=0.5,
        help="EMA weight kept from past probabilities, 0 = off (default 0.5)",
    )
    p.add_argument(
        "--switch-margin",
        type=float_in_range(0, 1),
        default=0.1,
        help="a new label must beat the shown one by this much (default 0.1)",
    )
    p.add_argument(
        "--switch-patience",
        type=int_in_range(1, 1000),
        default=3,
        help="... on this many consecutive decisions (default 3)",
    )
    p.add_argument("--max-frames", type=int_in_range(1, 10**8), help="stop after this many frames")
    p.add_argument(
        "--timeout",
        type=float_in_range(0, 3600, low_open=True),
        default=5.0,
        help="network open/read timeout (s)",
    )
    p.add_argument(
        "--retries",
        type=int_in_range(0, 1000),
        default=3,
        help="network reconnect attempts in a row",
    )
    p.add_argument(
        "--backoff", type=float_in_range(0, 3600), default=0.5, help="first reconnect delay (s)"
    )
    p.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N | mps")
    p.add_argument(
        "--engine",
        choices=["auto", "onnx", "int8", "torch"],
        default="auto",
        help="per-frame CNN path: auto (onnxruntime fp32 on a CPU), onnx, int8 (onnxruntime "
        "static int8: faster, features a few per cent off fp32; never automatic) or torch",
    )
    p.add_argument(
        "--calibrate",
        type=path_arg,
        metavar="VIDEO",
        help="--engine int8: a video like the stream's to fit int8 ranges to (default: the "
        "source file itself; required for cameras and URLs)",
    )
    p.add_argument(
        "--flow-config",
        type=path_arg,
        metavar="PATH",
        help="flow-stream runs: the flow_config.json (or flow folder) training used",
    )
    p.add_argument(
        "--flow-method",
        choices=list(FLOW_METHODS),
        help="flow-stream runs: a faster flow method than training's (warns: the "
        "features then differ from training's)",
    )
    p.set_defaults(func=run_stream_cli)


def run_stream_cli(args: argparse.Namespace) -> int:
    import os

    # Before torch loads OpenMP: idle PyTorch threads sleep instead of spinning, so they do
    # not steal the cores from onnxruntime's CNN call between the (small) torch ops of a
    # frame; on a busy 2-core CPU spinning made eager MobileNetV3 several times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from harkit.infer.engine import stream_engine
    from harkit.infer.errors import InferenceError, SourceError
    from harkit.infer.pipeline import split_model
    from harkit.infer.sources import open_source
    from harkit.infer.stream import run_stream
    from harkit.infer.stream_plan import StreamConfig, plan_stream
    from harkit.train.run import load_run, read_run_info

    config = StreamConfig(
        mode=args.mode,
        window=args.window,
        hop=args.hop,
        frame_jump=args.frame_jump,
        warmup=args.warmup,
        reset=args.reset,
        smoothing=args.smoothing,
        switch_margin=args.switch_margin,
        switch_patience=args.switch_patience,
        max_frames=args.max_frames,
        engine=args.engine,
    )
    source = open_source(
        args.source,
        realtime=args.realtime,
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
    )
    recipe, classes, net = load_run(args.run, device=args.device)
    run_info = read_run_info(args.run)
    model = split_model(
        recipe,
        classes,
        net,
        device=args.device,
        flow=args.flow_config,
        flow_method=args.flow_method,
        run_info=run_info,
    )
    calibration = None
    if args.engine == "int8":
        calibration = _calibration_frames(args.calibrate or getattr(source, "path", None))
        if calibration is None:
            raise InferenceError("--engine int8 on a live source needs --calibrate VIDEO")
    engine = stream_engine(model, args.engine, calibration=calibration)  # kept on the model
    said_engine = "harkit stream: engine torch (the encoder's own path)"
    if engine is not None:
        check = ", ".join(f"{k} {v:.3g}" for k, v in engine.check.items())
        said_engine = f"harkit stream: engine {engine.kind}; vs fp32 on probe frames: {check}"
    plan = plan_stream(model, config, source, run_info)
    # Which frames the model sees decides what it can recognise: say it (first decision).
    jump = f"~{plan.frame_jump}" if plan.targets else plan.frame_jump  # exact picks vary
    sampling = f"window {plan.window} steps, frame jump {jump}: {plan.reason}"
    last: list[Decision | None] = [None]

    def emit(decision: Decision) -> None:
        if last[0] is None:  # not before: a source that fails stays a one-line error
            print(f"harkit stream: {sampling}", file=sys.stderr, flush=True)
            print(said_engine, file=sys.stderr, flush=True)
        # text: a line when the shown label changes (warm-up: its first step only)
        changed = last[0] is None or decision.label != last[0].label
        last[0] = decision
        if args.json:
            print(json.dumps(decision.to_dict()), flush=True)
        elif changed:
            print(
                f"{decision.timestamp:8.2f}s  frame {decision.frame:6d}  {decision.text()}",
                flush=True,
            )

    stats = run_stream(source, model, config, on_decision=emit, output=args.output, plan=plan)
    if not stats.frames_read:  # it opened, but nothing decodes
        raise SourceError(f"{source.name}: no frames could be decoded ({stats.end_reason})")
    if args.json:
        print(json.dumps(stats.to_dict()), flush=True)
    print(
        f"harkit stream: {stats.frames_read} frames in {stats.wall_s:.1f} s "
        f"({stats.fps:.1f} fps), {stats.frames_encoded} through the CNN, "
        f"{stats.frames_dropped} dropped, {stats.reconnects} reconnects; latency p50 "
        f"{stats.latency_ms_p50:.1f} ms, p95 {stats.latency_ms_p95:.1f} ms; {stats.end_reason}"
        + (
            f"; final decision {stats.final_label} {stats.final_confidence:.2f}"
            if stats.final_label
            else f"; no label yet: {last[0].text()}"
            if last[0] is not None
            else f"; no decision ({sampling})"
        ),
        file=sys.stderr,
    )
    return 0 if stats.frames_read else 1


def _calibration_frames(path: Path | None, count: int = 16) -> np.ndarray | None:
    """``count`` frames spread over the first ~10 s of ``path`` (None without one)."""
    if path is None:
        return None
    import numpy as np

    from harkit.data.video import probe, read_frames

    total = probe(path).num_frames or count
    indices = np.linspace(0, min(total, 300) - 1, num=min(count, total)).round().astype(int)
    return read_frames(path, indices)
