"""The public Python API (``harkit/__init__.py``): the README's example runs as written, the
names resolve, and ``import harkit`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import harkit
from harkit.config import ConfigError
from harkit.train.run import RunError

REPO = Path(__file__).resolve().parents[1]
MARKER = "# harkit-readme-python-api"


def readme_block() -> str:
    """The README's Python API example: the ```python block whose first line is MARKER."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if b.startswith(MARKER)]
    assert len(found) == 1, f"README.md: expected one ```python block starting {MARKER!r}"
    return found[0]


@pytest.mark.slow
def test_readme_python_api_example_runs_as_written(tmp_path: Path) -> None:
    # A fresh interpreter in an empty folder: the user's situation, relative paths and all.
    done = subprocess.run(
        [sys.executable, "-c", readme_block()],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "epochs trained: 15" in out
    top1 = re.search(r"test top-1: (\d\.\d\d) over 4 clips", out)
    assert top1 is not None, out
    # the GRU separates left from right motion of unseen actors (1.00 measured)
    assert float(top1.group(1)) >= 0.75, out
    said = re.search(r"^Class: move_left, Confidence: (\d\.\d\d)$", out, flags=re.M)
    assert said is not None and float(said.group(1)) >= 0.5, out
    assert "backbones: " in out and "parameters: " in out
    assert int(re.search(r"parameters: (\d+)", out).group(1)) > 1000
    assert (tmp_path / "runs/tiny/report/report.md").is_file()
    assert (tmp_path / "runs/tiny/model.safetensors").is_file()


def test_import_harkit_loads_no_torch() -> None:
    code = (
        "import sys, harkit\n"
        "assert 'torch' not in sys.modules, 'import harkit imported torch'\n"
        "assert harkit.list_recipes() and 'torch' not in sys.modules\n"  # recipes are YAML
        "harkit.create_model('synthetic-gru', num_classes=3)\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=REPO)


def test_public_names_resolve_and_no_subpackage_shadows_them() -> None:
    import harkit.experiments
    import harkit.infer.recognizer
    import harkit.train  # binds harkit.train to the package: why training is harkit.fit

    assert harkit.__all__ == sorted(harkit.__all__)
    for name in harkit.__all__:
        value = getattr(harkit, name)
        assert not isinstance(value, ModuleType), f"harkit.{name} is a module"
    assert set(harkit.__all__) <= set(dir(harkit))
    from harkit import Recognizer, create_model, recognize

    assert Recognizer is harkit.infer.recognizer.Recognizer and callable(create_model)
    assert callable(recognize) and harkit.evaluate_run is harkit.experiments.evaluate_run
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        harkit.nonexistent  # noqa: B018


def test_create_model_and_recognize_refuse_bad_input(tmp_path: Path) -> None:
    model = harkit.create_model("synthetic-gru", num_classes=5, overrides=["head.hidden=8"])
    assert not model.training
    assert model(*_features()).shape == (2, 5)
    for bad in (1, True, 2.0):
        with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
            harkit.create_model("synthetic-gru", num_classes=bad)
    with pytest.raises(ConfigError, match="unknown recipe"):
        harkit.create_model("no-such-recipe", num_classes=2)
    with pytest.raises(ConfigError, match="overrides apply to a recipe name"):
        harkit.create_model(harkit.load_recipe("synthetic-gru"), 2, overrides=["head.hidden=8"])
    with pytest.raises(RunError, match="run folder not found"):
        harkit.recognize(tmp_path / "no-run", tmp_path / "clip.mp4")


def _features() -> tuple:
    """A batch of 2 feature sequences of the model's input size, and their lengths."""
    import torch

    from harkit.models.builder import feature_dims

    dim = sum(feature_dims(harkit.load_recipe("synthetic-gru")))
    return torch.randn(2, 6, dim), torch.tensor([6, 4])
