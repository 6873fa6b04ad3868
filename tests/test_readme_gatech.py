"""The README's own-videos workflow, word for word: GaTech leave-one-person-out in one
command (``--splits leave-one-group-out``) with the recommended recipe, from the bash block
whose first line is MARKER. Needs ../shared."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import REPO, readme_block

SHARED = REPO.parent / "shared"
MARKER = "# harkit-readme-gatech-lopo"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED / "realdata" / "gatech_ud810_ps7" / "labels.csv").is_file(),
        reason="needs ../shared/realdata/gatech_ud810_ps7",
    ),
]


def test_readme_gatech_leave_one_person_out_as_written(tmp_path: Path) -> None:
    # the README's relative ../shared path from a working folder beside a shared/ folder
    (tmp_path / "shared").symlink_to(SHARED.resolve(), target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-e", "-c", readme_block(MARKER, "bash")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folds = re.findall(
        r"^split (\d) \(held out: (\d)\): top-1 (\d+\.\d\d)%$", done.stdout, flags=re.M
    )
    assert [(k, p) for k, p, _ in folds] == [("1", "1"), ("2", "2"), ("3", "3")], done.stdout
    mean = sum(float(top1) for *_, top1 in folds) / 3
    assert mean >= 95.0, folds  # 100.00 for every person measured
    assert (work / "runs" / "gatech" / "splits.md").is_file()
    # the lines the README shows are the ones harkit printed, in order
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("person k held out) and prints:\n\n```\n", 1)[1].split("```", 1)[0]
    printed = [line for line in done.stdout.splitlines() if not line.startswith("INFO")]
    assert shown.splitlines() == printed[-4:]
