"""A wheel built from this tree, installed (not editable) into a fresh virtual environment,
carries the built-in recipes: ``harkit info --list`` names them and ``harkit train --recipe
efficientnet-gru`` trains on ``harkit data synth`` videos, run from a folder outside the tree.

Offline: the wheel is built with this environment's setuptools (the build backend), and the
new environment takes its dependencies from this one's site-packages by path (a ``.pth``
line; this environment's own ``.pth`` files, among them the editable harkit's finder, are not
run there), so ``harkit`` itself can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_an_installed_wheel_lists_and_trains_the_built_in_recipes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HARKIT_RECIPES")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    work = tmp_path / "work"  # every command runs here, outside the source tree
    work.mkdir()

    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "harkit", src / "harkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        dist,
        src,
        cwd=work,
        env=env,
    )
    (wheel,) = dist.glob("harkit-*.whl")
    recipes = sorted(
        p.relative_to(REPO / "harkit" / "recipes").with_suffix("").as_posix()
        for p in (REPO / "harkit" / "recipes").rglob("*.yaml")
    )
    assert "efficientnet-gru" in recipes and any(r.startswith("ablations/") for r in recipes)
    with zipfile.ZipFile(wheel) as zf:
        packed = {n for n in zf.namelist() if n.startswith("harkit/recipes/")}
    assert packed == {f"harkit/recipes/{r}.yaml" for r in recipes}

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work, env=env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = Path(
        _run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=work,
            env=env,
        ).strip()
    )
    deps = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    (site / "harkit-test-deps.pth").write_text("".join(f"{p}\n" for p in deps), encoding="utf-8")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
        cwd=work,
        env=env,
    )

    where = _run(
        python,
        "-c",
        "import harkit.models.recipe as r, harkit; print(harkit.__file__); print(r.recipe_dir())",
        cwd=work,
        env=env,
    ).split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where

    harkit = bin_dir / "harkit"
    assert _run(harkit, "info", "--list", cwd=work, env=env).split() == recipes

    data, store, run = work / "synth", work / "store", work / "run"
    _run(
        harkit,
        "data",
        "synth",
        data,
        "-s",
        "num_actors=3",
        "-s",
        "test_actors=1",
        "-s",
        "clips_per_actor=1",
        "-s",
        "num_frames=8",
        "-s",
        "size=64",
        "-s",
        "classes=[grow,shrink]",
        cwd=work,
        env=env,
    )
    _run(
        harkit,
        "train",
        "--recipe",
        "efficientnet-gru",
        "--dataset",
        data,
        "--store",
        store,
        "--run",
        run,
        "--no-progress",
        "-s",
        "optim.epochs=1",
        "-s",
        "optim.val_fraction=0",
        "-s",
        "input.sampling.num_frames=4",
        cwd=work,
        env=env,
    )
    assert (run / "run.json").is_file()
    assert (run / "model.safetensors").is_file()
