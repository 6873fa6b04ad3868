"""The public Python API (``harkit/__init__.py``): the README's example runs as written, the
names resolve, and ``import harkit`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
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
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
        "assert 'pydantic' not in sys.modules, 'argument checks are built on first call'\n"
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
    wanted = [
        (1, "greater than or equal to 2"),
        (True, "a valid integer"),
        (2.0, "a valid integer"),
    ]
    for bad, expected in wanted:
        message = f"create_model: argument 'num_classes': input should be {expected}, got {bad!r}"
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
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
        "synthetic-gru",
        tmp_path / "videos",
        str(tmp_path / "run"),
        splits=[1, 2],
        overrides="head.hidden=8",
        store=tmp_path / "store",
        max_epochs=1,
    )
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
        harkit.train_and_evaluate(
            "synthetic-gru", tmp_path / "videos", tmp_path / "r", splits=[1, 2, 3]
        )
    assert not (tmp_path / "r").exists()


def test_one_override_string_is_one_override() -> None:
    model = harkit.create_model("synthetic-gru", 3, overrides="head.hidden=8")
    want = harkit.create_model("synthetic-gru", 3, overrides=["head.hidden=8"])
    assert [p.shape for p in model.parameters()] == [p.shape for p in want.parameters()]
    wrong = "create_model: argument 'overrides': expected 'key=value' strings (a list, or one"
    with pytest.raises(ConfigError, match=f"^{re.escape(wrong)} string\\), got \\[1\\]$"):
        harkit.create_model("synthetic-gru", 3, overrides=[1])
    with pytest.raises(ConfigError, match="unknown key"):  # not 'h', 'e', 'a', ...
        harkit.fit("synthetic-gru", "videos", "run", overrides="head.nope=1")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: harkit.fit(123, "videos", "run"),
            "fit: argument 'recipe': expected a recipe name, a YAML path or a Recipe, got 123",
        ),
        (lambda: harkit.fit("synthetic-gru", 42, "run"), "dataset': expected a DatasetConfig"),
        (lambda: harkit.fit("synthetic-gru", "videos", None), "run_dir': expected a run folder"),
        (lambda: harkit.create_model(None, 2), "'recipe': expected .* got None$"),
        (lambda: harkit.create_backbone(3), r"'name': expected a backbone name .* got 3$"),
        (lambda: harkit.evaluate_run(5), "'run_dir': expected a run folder path .* got 5$"),
        (lambda: harkit.recognize("run", 5), "'video': expected a video file .* got 5$"),
        (lambda: harkit.recognize("run", ["a.mp4"]), r"predict_many, got \['a.mp4'\]$"),
        (lambda: harkit.recognize(5, "a.mp4"), "recognize: argument 'run': expected a run folder"),
        (
            lambda: harkit.recognize("run", "a.mp4", top_k=0),
            "'top_k': .* greater than or equal to 1",
        ),
        (lambda: harkit.recognize("run", "a.mp4", top_k=-1), "'top_k': .* equal to 1, got -1$"),
        (
            lambda: harkit.recognize("run", "a.mp4", device="gpu7"),
            "device: expected cpu, cuda, cuda:N or mps, got 'gpu7'",
        ),
        (lambda: harkit.train_and_evaluate(None, "v", "r", splits=[1]), "'recipe': expected"),
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


# Each function's argument rules are declared in its signature (harkit.arguments) and checked
# before any work: a wrong type, a value out of range, a bool for an int. The whole line.
ARGUMENT_CASES = [
    (
        lambda: harkit.create_model("synthetic-gru", "4"),
        "create_model: argument 'num_classes': input should be a valid integer, got '4'",
    ),
    (
        lambda: harkit.create_model("synthetic-gru", 4, pretrained=1),
        "create_model: argument 'pretrained': input should be a valid boolean, got 1",
    ),
    (
        lambda: harkit.create_model(" ", 4),
        "create_model: argument 'recipe': expected a recipe name, a YAML path or a Recipe, got ' '",
    ),
    (
        lambda: harkit.create_model("synthetic-gru", np.zeros((2, 2))),  # one line, however shown
        "create_model: argument 'num_classes': input should be a valid integer, "
        "got array([[0., 0.], [0., 0.]])",
    ),
    (
        lambda: harkit.create_model("synthetic-gru", "9" * 500),
        "create_model: argument 'num_classes': input should be a valid integer, "
        f"got '{'9' * 169}... (502 characters)",
    ),
    (
        lambda: harkit.fit("synthetic-gru", "videos", "run", overrides=("a=1", 2)),
        "fit: argument 'overrides': expected 'key=value' strings (a list, or one string), "
        "got ('a=1', 2)",
    ),
    (
        lambda: harkit.fit("synthetic-gru", "videos", "", store=5),
        "fit: argument 'run_dir': expected a run folder path (str or Path), got ''; "
        "argument 'store': expected a path (str or Path), got 5",
    ),
    (
        lambda: harkit.train_and_evaluate("synthetic-gru", "v", "r", splits=[1, True]),
        "train_and_evaluate: argument 'splits.1': input should be a valid integer, got True",
    ),
    (
        lambda: harkit.train_and_evaluate("synthetic-gru", "v", "r", splits=[0], clips=0),
        "train_and_evaluate: argument 'splits.0': input should be greater than or equal to 1, "
        "got 0; argument 'clips': input should be greater than or equal to 1, got 0",
    ),
    (
        lambda: harkit.train_and_evaluate("synthetic-gru", "v", "r", splits="12"),
        "train_and_evaluate: argument 'splits': 'str' instances are not allowed as a Sequence "
        "value, got '12'",
    ),
    (
        lambda: harkit.evaluate_run("run", 3.5),
        "evaluate_run: argument 'dataset': expected a DatasetConfig, a video folder, a CSV "
        "manifest path or a torch Dataset, got 3.5",
    ),
    (
        lambda: harkit.evaluate_run("run", clips=True),
        "evaluate_run: argument 'clips': input should be a valid integer, got True",
    ),
    (
        lambda: harkit.evaluate_run("run", clips=0),
        "evaluate_run: argument 'clips': input should be greater than or equal to 1, got 0",
    ),
    (
        lambda: harkit.recognize("run", "a.mp4", top_k=True),
        "recognize: argument 'top_k': input should be a valid integer, got True",
    ),
    (
        lambda: harkit.recognize("run", "a.mp4", top_k=2.0),
        "recognize: argument 'top_k': input should be a valid integer, got 2.0",
    ),
    (
        lambda: harkit.create_backbone("resnet18", grid=0),
        "create_backbone: argument 'grid': input should be greater than or equal to 1, got 0",
    ),
    (
        lambda: harkit.create_backbone("resnet18", weights=5),  # a union: its annotation
        "create_backbone: argument 'weights': expected str | os.PathLike[str] | None, got 5",
    ),
    (
        lambda: harkit.create_backbone("resnet18", frozen="yes"),
        "create_backbone: argument 'frozen': input should be a valid boolean, got 'yes'",
    ),
    (
        lambda: harkit.get_backbone_spec(None),
        "get_backbone_spec: argument 'name': expected a backbone name "
        "(see harkit.list_backbones()), got None",
    ),
    (
        lambda: harkit.extract_features([], [], "store", batch_size=0, num_workers=-1),
        "extract_features: argument 'index': input should be an instance of VideoIndex, got []; "
        "argument 'sources': value should have at least 1 item after validation, not 0, got []; "
        "argument 'batch_size': input should be greater than or equal to 1, got 0; "
        "argument 'num_workers': input should be greater than or equal to 0, got -1",
    ),
]


@pytest.mark.parametrize(("call", "message"), ARGUMENT_CASES)
def test_each_bad_argument_is_one_config_error_line(call, message) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert type(info.value) is ConfigError and str(info.value) == message


def test_errors_inside_a_function_are_not_argument_errors() -> None:
    from pydantic import ValidationError

    from harkit._lazy import validated
    from harkit.config import StrictModel

    class Section(StrictModel):
        size: int

    @validated
    def build(size: int) -> Section:
        return Section(size=size, colour="red")  # the function's own bug, not its argument

    with pytest.raises(ValidationError, match="colour"):
        build(3)
    with pytest.raises(ConfigError, match="build: argument 'size': input should be a valid"):
        build("3")


def test_the_cli_prints_a_bad_argument_as_one_line_and_exits_2(monkeypatch, capsys) -> None:
    import harkit.cli.info
    from harkit.cli.main import main

    def verb(args: object) -> int:  # a verb passing on a value its parser let through
        return harkit.create_model("synthetic-gru", num_classes=True)

    monkeypatch.setattr(harkit.cli.info, "run_info", verb)
    assert main(["info"]) == 2
    assert capsys.readouterr().err == (
        "harkit: error: create_model: argument 'num_classes': input should be a valid integer, "
        "got True\n"
    )


def test_numpy_integers_count_as_ints_and_numpy_bools_do_not() -> None:
    labels = np.array([0, 2, 1])
    model = harkit.create_model("synthetic-gru", labels.max() + 1)  # np.int64(3)
    x, lengths = _features()
    assert model(x, lengths).shape == (2, 3)
    with pytest.raises(ConfigError, match=r"argument 'top_k': input should be greater .* got 0"):
        harkit.recognize("run", "a.mp4", top_k=np.int64(0))
    with pytest.raises(ConfigError, match=r"argument 'splits.1': .* got np.True_"):
        harkit.train_and_evaluate("synthetic-gru", "v", "r", splits=[np.int64(1), np.True_])
    with pytest.raises(ConfigError, match=r"argument 'splits.0': .* equal to 1, got 0"):
        harkit.train_and_evaluate("synthetic-gru", "v", "r", splits=range(3))  # a range is a list


def test_evaluation_options_are_checked_before_the_run_is_read(tmp_path) -> None:
    """clips=10**6 ran for 10+ minutes at 4.5 GB; batch_size=-1 was a DataLoader ValueError."""
    with pytest.raises(ConfigError, match=r"argument 'clips': .* less than or equal to 1000"):
        harkit.evaluate_run(tmp_path / "run", clips=10**6)
    with pytest.raises(ConfigError, match=r"argument 'batch_size': .* greater than or equal to 1"):
        harkit.evaluate_run(tmp_path / "run", batch_size=-1)
    with pytest.raises(
        ConfigError, match=r"argument 'batch_size': input should be a valid integer"
    ):
        harkit.evaluate_run(tmp_path / "run", batch_size="8")


def test_load_recipe_takes_one_override_string_and_refuses_none() -> None:
    """One string was read as one override per character ('override 'o' must look like ...')."""
    assert harkit.load_recipe("synthetic-gru", "optim.epochs=3").optim.epochs == 3
    with pytest.raises(ConfigError, match=r"load_recipe: argument 'name_or_path': .* got None"):
        harkit.load_recipe(None)


def test_evaluate_splits_and_render_dataset_check_their_arguments(tmp_path) -> None:
    """'1,2' was a TypeError comparing str with int, [True] was split 1, None a TypeError."""
    with pytest.raises(ConfigError, match=r"evaluate_splits: argument 'splits': .* got '1,2'"):
        harkit.evaluate_splits(tmp_path / "run", "1,2")
    with pytest.raises(ConfigError, match=r"argument 'splits.0': .* got True"):
        harkit.evaluate_splits(tmp_path / "run", [True])
    with pytest.raises(ConfigError, match=r"render_dataset: argument 'out_dir': .* got None"):
        harkit.render_dataset(None)
    with pytest.raises(ConfigError, match=r"render_dataset: argument 'config'"):
        harkit.render_dataset(tmp_path / "data", {"classes": ["a", "b"]})
    assert not (tmp_path / "data").exists()


def test_reproduce_and_ablate_check_their_arguments_before_training(tmp_path) -> None:
    """reproduce(clips=10**6) trained every split, then failed at its first evaluation."""
    from harkit.data.datasets import DatasetConfig
    from harkit.experiments.ablate import ablate
    from harkit.experiments.reproduce import reproduce

    data = DatasetConfig(root=tmp_path / "videos")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"reproduce: argument 'clips': .* got 1000000"):
        reproduce("efficientnet-gru", data, out, clips=10**6)
    with pytest.raises(ConfigError, match=r"reproduce: argument 'splits.0': .* got 0"):
        reproduce("efficientnet-gru", data, out, splits=[0])
    with pytest.raises(ConfigError, match=r"ablate: argument 'clips': .* got 0"):
        ablate([], data, out, clips=0)
    with pytest.raises(ConfigError, match=r"ablate: argument 'dataset'"):
        ablate([], str(tmp_path), out)
    assert not out.exists()


def test_an_absurd_class_count_is_refused_before_allocating() -> None:
    """num_classes=10**12 was torch's 'can't allocate 512000000000000 bytes'."""
    with pytest.raises(ConfigError, match=r"'num_classes': input should be less than or equal"):
        harkit.create_model("synthetic-gru", 10**12)
