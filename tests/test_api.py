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
from tests.readme import REPO, readme_block

MARKER = "# harkit-readme-python-api"


@pytest.mark.slow
def test_readme_python_api_example_runs_as_written(tmp_path: Path) -> None:
    # A fresh interpreter in an empty folder: the user's situation, relative paths and all.
    done = subprocess.run(
        [sys.executable, "-c", readme_block(MARKER, "python")],
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
    assert callable(recognize) and callable(harkit.evaluate_run)
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


def test_train_and_evaluate_takes_what_fit_takes(tmp_path: Path, monkeypatch) -> None:
    # README: harkit.train_and_evaluate(recipe, dataset, run, splits=[1, 2, 3]) beside fit
    import harkit.experiments.splits as splits

    seen: dict = {}

    def fake(recipe, dataset, run_dir, **kw):
        seen.update(recipe=recipe, dataset=dataset, run_dir=run_dir, **kw)
        return {"ok": True}

    monkeypatch.setattr(splits, "train_and_evaluate", fake)
    got = harkit.train_and_evaluate(
        "synthetic-gru", tmp_path / "videos", str(tmp_path / "run"), splits=[1, 2],
        overrides="head.hidden=8", store=tmp_path / "store", max_epochs=1,
    )  # fmt: skip
    assert got == {"ok": True} and "train_and_evaluate" in harkit.__all__
    assert isinstance(seen["recipe"], harkit.Recipe) and seen["recipe"].head.hidden == 8
    assert isinstance(seen["dataset"], harkit.DatasetConfig)
    assert seen["dataset"].root == tmp_path / "videos"
    assert seen["run_dir"] == tmp_path / "run" and seen["splits"] == [1, 2]
    assert seen["max_epochs"] == 1 and seen["clips"] == 1
    monkeypatch.undo()
    # the real one: names and paths get as far as the dataset's splits check
    (tmp_path / "videos" / "a").mkdir(parents=True)
    with pytest.raises(harkit.HarkitError, match="without official splits"):
        harkit.train_and_evaluate("synthetic-gru", tmp_path / "videos", tmp_path / "r",
                                  splits=[1, 2, 3])  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_one_override_string_is_one_override() -> None:
    model = harkit.create_model("synthetic-gru", 3, overrides="head.hidden=8")
    want = harkit.create_model("synthetic-gru", 3, overrides=["head.hidden=8"])
    assert [p.shape for p in model.parameters()] == [p.shape for p in want.parameters()]
    with pytest.raises(ConfigError, match=r"^overrides: expected 'key=value' strings"):
        harkit.create_model("synthetic-gru", 3, overrides=[1])
    with pytest.raises(ConfigError, match="unknown key"):  # not 'h', 'e', 'a', ...
        harkit.fit("synthetic-gru", "videos", "run", overrides="head.nope=1")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: harkit.fit(123, "videos", "run"),
            "recipe: expected a recipe name, a YAML path or a Recipe, got int 123",
        ),
        (lambda: harkit.fit("synthetic-gru", 42, "run"), "dataset: expected a DatasetConfig"),
        (lambda: harkit.fit("synthetic-gru", "videos", None), "run_dir: expected a run folder"),
        (lambda: harkit.create_model(None, 2), "recipe: expected .* got NoneType None"),
        (lambda: harkit.create_backbone(3), r"name: expected a backbone name .* got int 3"),
        (lambda: harkit.evaluate_run(5), "run_dir: expected a run folder path .* got int 5"),
        (lambda: harkit.recognize("run", 5), "video: expected a video file .* got int 5"),
        (lambda: harkit.recognize("run", ["a.mp4"]), r"predict_many, got list \['a.mp4'\]"),
        (lambda: harkit.recognize(5, "a.mp4"), "run: expected a run folder path"),
        (lambda: harkit.recognize("run", "a.mp4", top_k=0), "top_k must be an integer >= 1"),
        (lambda: harkit.recognize("run", "a.mp4", top_k=-1), "top_k must be an integer >= 1"),
        (
            lambda: harkit.recognize("run", "a.mp4", device="gpu7"),
            "device: expected cpu, cuda, cuda:N or mps, got 'gpu7'",
        ),
        (lambda: harkit.train_and_evaluate(None, "v", "r", splits=[1]), "recipe: expected"),
    ],
)
def test_bad_arguments_are_one_line_harkit_errors(call, message) -> None:
    with pytest.raises(harkit.HarkitError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_cuda_without_a_gpu_is_a_harkit_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(harkit.HarkitError, match="no CUDA device; use cpu"):
        harkit.recognize(tmp_path / "run", "a.mp4", device="cuda")


def _features() -> tuple:
    """A batch of 2 feature sequences of the model's input size, and their lengths."""
    import torch

    from harkit.models.builder import feature_dims

    dim = sum(feature_dims(harkit.load_recipe("synthetic-gru")))
    return torch.randn(2, 6, dim), torch.tensor([6, 4])
