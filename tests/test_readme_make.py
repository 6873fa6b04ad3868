"""The README's first block, ``make demo`` and ``make test``, run by make in a stand-in
checkout: symlinks to this repository's Makefile, pyproject.toml, .venv, harkit and
benchmarks, so the targets run as written without writing into the working tree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.readme import REPO, readme_block

MARKER = "# harkit-readme-make"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    box = tmp_path / "harkit"
    box.mkdir()
    for name in ("Makefile", "pyproject.toml", ".venv", "harkit", "benchmarks"):
        (box / name).symlink_to(REPO / name)
    # an out-of-date stamp would make `make` pip-install into the shared .venv
    stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=box, check=False)
    if stale.returncode != 0:
        pytest.skip(".venv/.installed is older than pyproject.toml: make would reinstall")
    return box


def _command(target: str) -> str:
    """The README's ``make <target>`` line (the block holds one per target)."""
    lines = [line.split("#")[0].strip() for line in readme_block(MARKER, "bash").splitlines()]
    assert f"make {target}" in lines, lines
    return f"make {target}"


def _make(command: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        command.split(), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_make_demo_runs_the_pipeline_and_learns(checkout: Path) -> None:
    done = _make(_command("demo"), checkout, timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    top1 = re.search(
        r"^clip-level top-1 (\d+\.\d\d)% \(32 of 32 test videos evaluated\)",
        done.stdout,
        flags=re.M,
    )
    assert top1 is not None and float(top1.group(1)) >= 90.0, done.stdout[-3000:]  # 100 measured
    # the last stage labels three held-out clips; the README says all three come out right
    labelled = re.findall(r"^\S+/(\w+)/\w+\.mp4 +(\w+) \d\.\d\d", done.stdout, flags=re.M)
    assert len(labelled) == 3 and all(a == b for a, b in labelled), done.stdout[-3000:]
    assert "demo finished in" in done.stdout
    out = checkout / "demo-output"
    assert (out / "ablation/ablation.md").is_file()
    assert (out / "runs/efficientnet-motion-gru/report/confusion_matrix.png").is_file()


def test_make_test_runs_ruff_then_pytest_on_tests(checkout: Path) -> None:
    # The real suite cannot run itself: a stand-in tests/ folder shows what `make test` runs.
    (checkout / "tests").mkdir()
    (checkout / "tests/test_stand_in.py").write_text("def test_passes() -> None:\n    pass\n")
    done = _make(_command("test"), checkout, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "ruff check harkit tests benchmarks" in done.stdout
    assert re.search(r"^=+ 1 passed", done.stdout, flags=re.M), done.stdout[-2000:]
    # a failing test fails the target
    (checkout / "tests/test_stand_in.py").write_text(
        "def test_fails() -> None:\n    raise AssertionError\n"
    )
    assert _make("make test", checkout, timeout=300).returncode != 0
    # and so does a lint error
    (checkout / "tests/test_stand_in.py").write_text("import os\n")
    failed = _make("make test", checkout, timeout=300)
    assert failed.returncode != 0 and "F401" in failed.stdout
