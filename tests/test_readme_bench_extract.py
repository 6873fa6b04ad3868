"""The README's extraction-benchmark block. As written it runs for tens of minutes (four
backbones, each with a compiled ceiling and a naive loop), so every line runs with the
smallest settings the script takes appended (argparse keeps the last value): one backbone
(EfficientNet-Lite0, whose ImageNet weights ship offline), one clip, one frame for the
ceiling. The lines' own options and environment still apply."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.tolerances import FEATURE_RTOL
from tests.readme import REPO, readme_block

pytestmark = pytest.mark.slow

MARKER = "# harkit-readme-bench-extract"
SMALLEST = (
    "--backbones efficientnet_lite0 --frames 1 --ceiling-batches 1 --ceiling-frames 1 "
    "--naive-clips 1"
)


def test_extract_benchmark_block_runs_and_reports_each_backbone(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(REPO / "benchmarks" / "extract.py", tmp_path / "benchmarks" / "extract.py")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    lines = [line.split("#")[0].strip() for line in readme_block(MARKER, "bash").splitlines()]
    commands = [line for line in lines if line]
    assert len(commands) == 3 and all("python benchmarks/extract.py" in c for c in commands)
    results = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-e", "-c", f"{command} {SMALLEST}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(json.loads(done.stdout))
    # the first line also writes its JSON where it says
    written = json.loads((tmp_path / "benchmarks/results/extract.json").read_text())
    assert written["backbones"].keys() == results[0]["backbones"].keys()
    for result in results:
        lite0 = result["backbones"]["efficientnet_lite0"]
        assert lite0["weights"] == "imagenet"
        for stage in ("naive", "harkit", "ceiling"):
            assert lite0[stage]["fps"] > 0
        # the README's table: Lite0 runs fp32 on every CPU, within the fp32 bound
        assert lite0["precision"] == "fp32"
        assert lite0["fp32_max_rel_err"] <= FEATURE_RTOL["fp32"]
