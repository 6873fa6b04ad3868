"""``make demo``: the main job end to end on the built-in synthetic dataset.

Each stage is the CLI command a user would type, so the demo doubles as a walkthrough.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from harkit.cli.main import main as harkit


def stages(out: Path) -> list[list[str]]:
    data = out / "synth"
    return [
        ["data", "synth", str(data)],
        ["data", "inspect", str(data), "--json", str(out / "inspect.json")],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for argv_ in stages(args.out):
        print(f"\n$ harkit {shlex.join(argv_)}", flush=True)
        code = harkit(argv_)
        if code:
            return code
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
