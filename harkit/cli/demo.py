"""``make demo``: the main job end to end on the built-in synthetic dataset, offline.

synthesise -> inspect -> extract features once -> train a GRU head on the cache -> evaluate
(report + confusion matrix) -> GRU vs order-agnostic head -> stream in real time -> predict.
Each stage is the CLI command a user would type, so the demo doubles as a walkthrough.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from harkit.cli.args import folder
from harkit.cli.main import main as harkit

RECIPE = "synthetic-gru"
# 12 actors (3 held out for test) x 3 clips x 12 classes = 432 clips, ~3 MB.
SYNTH = ["-s", "num_actors=12", "-s", "clips_per_actor=3", "-s", "test_actors=3"]
TEST_CLIPS = ("move_left/move_left_a12_c01.mp4", "grow/grow_a11_c02.mp4",
              "rotate_cw/rotate_cw_a10_c03.mp4")  # fmt: skip


def stages(out: Path) -> list[list[str]]:
    data, store, run = out / "synth", out / "features", out / "runs" / RECIPE
    dataset = ["--dataset", str(data), "--store", str(store)]
    return [
        ["data", "synth", str(data), *SYNTH],
        ["data", "inspect", str(data), "--json", str(out / "inspect.json")],
        ["extract", str(data), "--recipe", RECIPE, "--store", str(store), "--no-progress"],
        ["train", "--recipe", RECIPE, *dataset, "--run", str(run), "--no-progress"],
        ["evaluate", str(run)],
        ["ablate", "--recipe", RECIPE, "--grid", "head.type=recurrent,mean", *dataset,
         "--out", str(out / "ablation"), "--no-progress"],
        ["stream", str(run), "--source", str(data / TEST_CLIPS[0]), "--realtime",
         "--output", str(out / "stream_annotated.mp4")],
        ["predict", str(run), *(str(data / clip) for clip in TEST_CLIPS), "--top-k", "3",
         "--no-progress"],
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=folder, default=Path("demo-output"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for argv_ in stages(args.out):
        print(f"\n$ harkit {shlex.join(argv_)}", flush=True)
        code = harkit(argv_)
        if code:
            print(f"demo stopped: 'harkit {argv_[0]}' exited with {code}", file=sys.stderr)
            return code
    run = args.out / "runs" / RECIPE
    print(
        f"\ndemo finished in {time.perf_counter() - start:.0f} s. Report: {run}/report/report.md, "
        f"confusion matrix: {run}/report/confusion_matrix.png, "
        f"GRU vs mean-pool: {args.out}/ablation/ablation.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
