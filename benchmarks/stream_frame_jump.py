"""What ``harkit stream --frame-jump`` does to the answer, on real clips.

``efficientnet-motion-gru`` (Lite0 frame features + the ``flow_hist`` motion stream) is
trained on the EgoGestAR pointing clips' train split (``harkit extract`` + ``harkit train`` in
a temporary folder, one run per seed), then every held-out clip is streamed as a file three
times: at the run's default frame jump (a clip of up to two training clips is sampled as
``predict`` samples it: 16 frames spread over the clip, every ~round(frames / 16)-th), at
``--frame-jump 1`` (every frame: each step then spans less time, so the model sees the
fingertip move several times slower than in training) and at twice the default (twice as
fast). Reported: top-1 of the stream's final answer (the end of the file) for each, and how
often the default one equals ``predict``'s label on the whole file.

    python benchmarks/stream_frame_jump.py --out benchmarks/results/stream_frame_jump.json
    python benchmarks/stream_frame_jump.py --run runs/ego   # an existing run, no training
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from harkit.infer import Recognizer
from harkit.infer.sources import FileSource
from harkit.infer.stream import run_stream
from harkit.infer.stream_plan import StreamConfig, plan_stream
from harkit.train.run import RunInfo, read_run_info

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
RECIPE = "efficientnet-motion-gru"
CONDITIONS = ("default", "1", "2x default")


def _cli(*argv: str | Path) -> None:
    import harkit.cli.main as main

    code = main.main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"harkit {argv[0]} failed ({code})")


def _test_clips(data: Path) -> list[tuple[Path, str]]:
    with (data / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [(data / r["path"], r["label"]) for r in rows if r["split"] == "test"]


def _train(data: Path, work: Path, seed: int) -> Path:
    store, run = work / "store", work / f"run_seed{seed}"
    labels = data / "labels.csv"
    _cli("extract", labels, "--recipe", RECIPE, "--store", store, "--no-progress")
    _cli(
        "train",
        "--recipe",
        RECIPE,
        "--dataset",
        labels,
        "--store",
        store,
        "--run",
        run,
        "--set",
        f"optim.seed={seed}",
        "--accelerator",
        "cpu",
        "--no-progress",
    )
    return run


def _final(model, video: Path, jump: int | None, info: RunInfo) -> tuple[str, int]:
    """(the stream's final label, the frame jump it used) on one file."""
    stats = run_stream(FileSource(video), model, StreamConfig(frame_jump=jump), run_info=info)
    return stats.final_label, stats.frame_jump


def evaluate_run(run: Path, clips: list[tuple[Path, str]]) -> dict:
    rec = Recognizer.from_run(run)
    info = read_run_info(run)
    rows = []
    for video, label in clips:
        default = plan_stream(rec.model, StreamConfig(), FileSource(video), info).frame_jump
        row = {"clip": video.name, "label": label, "predict": rec.predict(video).label}
        for name, jump in zip(CONDITIONS, (None, 1, 2 * default), strict=True):
            row[name], row[f"{name} jump"] = _final(rec.model, video, jump, info)
        rows.append(row)
        print(
            f"  {video.name}: {label} | predict {row['predict']} | "
            + " | ".join(f"{c} (jump {row[c + ' jump']}) {row[c]}" for c in CONDITIONS),
            flush=True,
        )
    n = len(rows)
    return {
        "top1": {c: sum(r[c] == r["label"] for r in rows) / n for c in CONDITIONS},
        "predict_top1": sum(r["predict"] == r["label"] for r in rows) / n,
        "default_equals_predict": sum(r["default"] == r["predict"] for r in rows) / n,
        "mean_jump": {c: statistics.mean(r[f"{c} jump"] for r in rows) for c in CONDITIONS},
        "clips": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/stream_frame_jump.json")
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REALDATA / "egogestar_dirs",
        help="a folder with labels.csv (path,label,split)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--run", type=Path, help="evaluate this run instead of training")
    args = parser.parse_args()
    if not (args.data / "labels.csv").is_file():
        parser.error(f"{args.data}: no labels.csv")
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    clips = _test_clips(args.data)
    started = time.time()
    runs = []
    with tempfile.TemporaryDirectory(prefix="harkit-frame-jump-") as tmp:
        work = Path(tmp)
        for seed in [None] if args.run else args.seeds:
            run = args.run or _train(args.data, work, seed)
            print(f"seed {seed}: {len(clips)} held-out clips", flush=True)
            result = evaluate_run(run, clips)
            runs.append({"seed": seed, **result})
            print(
                f"seed {seed}: top-1 "
                + ", ".join(f"{c} {result['top1'][c]:.3f}" for c in CONDITIONS),
                flush=True,
            )
    summary = {
        c: {
            "mean": statistics.mean(r["top1"][c] for r in runs),
            "per_seed": [r["top1"][c] for r in runs],
        }
        for c in CONDITIONS
    }
    out = {
        "benchmark": "stream final answer vs --frame-jump, efficientnet-motion-gru",
        "data": str(args.data),
        "test_clips": len(clips),
        "recipe": RECIPE,
        "conditions": {
            "default": "the run's (a clip of <= 2 training clips: predict's 16 frames)",
            "1": "--frame-jump 1",
            "2x default": "--frame-jump 2 x the default",
        },
        "top1": summary,
        "runs": runs,
        "wall_s": round(time.time() - started, 1),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"top1": summary}, indent=1))


if __name__ == "__main__":
    main()
