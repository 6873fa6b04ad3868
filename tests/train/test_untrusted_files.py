"""No file harkit reads from a run folder or a feature store can run code.

Each test plants a payload that would create a marker file if anything unpickled it (or
constructed a Python object from YAML), drives the CLI verbs that read that file, and checks
that the marker never appears and the verb exits 2 with one line naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import harkit.cli.main as cli_main
from harkit.data.datasets import DatasetConfig
from harkit.features import FeatureStore, FeatureStoreError
from harkit.models.builder import feature_dims
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig, render_dataset
from harkit.train import train
from harkit.train.run import RunPaths
from tests.helpers.training import toy_data


class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.marker}'",))


def _recipe(*extra: str):
    return load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none, layer: layer1}]",
            "head.hidden=[8]",
            "head.fc=[]",
            "optim.batch_size=8",
            "optim.epochs=1",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with validation: best.ckpt, last.ckpt, model.safetensors, JSON, YAML."""
    recipe = _recipe()
    root = tmp_path_factory.mktemp("toy") / "run"
    train(recipe, toy_data(sum(feature_dims(recipe))), root, progress=False)
    return root


def _run_cli(argv: list[str | Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr; warnings (which a terminal would show on stderr) are added."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli_main.main([str(a) for a in argv])
    shown = "".join(f"warning: {w.message}\n" for w in caught)
    return code, shown + capsys.readouterr().err


def _assert_refused(code: int, err: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "a planted payload ran"
    assert code == 2, err
    assert err.startswith("harkit: error: ") and err.count("\n") == 1, err
    assert str(path) in err, err


def _torch_pickle(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {"model.x": Payload(marker)}, "epoch": 0}, path)


def _plain_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Payload(marker)))


def _yaml_tag(path: Path, marker: Path) -> None:
    path.write_text(f"!!python/object/apply:os.system [\"touch '{marker}'\"]\n")


def _json_list(path: Path, marker: Path) -> None:
    path.write_text(json.dumps(["not", "an", "object"]))


def _json_object(path: Path, marker: Path) -> None:
    path.write_text(json.dumps({"__class__": "os.system", "args": [f"touch {marker}"]}))


def _broken_json(path: Path, marker: Path) -> None:
    path.write_text('{"format_version": 1, ')


def _bad_dataset_config(path: Path, marker: Path) -> None:
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "dataset_config": {"root": ["x"], "kind": "os.system"}}))


VERBS: dict[str, Callable[[Path, Path, Path], list[str | Path]]] = {
    # recipe: a clean copy (the planted one is the run's own); no dataset is ever read.
    "train": lambda run, recipe, video: [
        "train",
        "--recipe",
        recipe,
        "--dataset",
        run.parent / "no-data",
        "--run",
        run,
        "--resume",
        "--no-progress",
    ],
    "evaluate": lambda run, recipe, video: ["evaluate", run],
    "predict": lambda run, recipe, video: ["predict", run, video, "--no-progress"],
    "stream": lambda run, recipe, video: ["stream", run, "--source", video],
    "export": lambda run, recipe, video: ["export", run, "--no-check"],
}
ALL = tuple(VERBS)
LOADERS = ("evaluate", "predict", "stream", "export")  # load_run: recipe, classes, weights

CASES = [
    ("checkpoints/last.ckpt", _torch_pickle, ("train",)),
    ("checkpoints/last.ckpt", _plain_pickle, ("train",)),
    ("checkpoints/best.ckpt", _torch_pickle, ("train",)),
    ("model.safetensors", _torch_pickle, LOADERS),
    ("model.safetensors", _plain_pickle, LOADERS),
    ("recipe.yaml", _yaml_tag, ALL),
    ("recipe.yaml", _plain_pickle, ALL),
    ("run.json", _json_list, ALL),
    ("run.json", _broken_json, ALL),
    ("run.json", _plain_pickle, ALL),
    ("run.json", _bad_dataset_config, ALL),
    ("classes.json", _json_object, ALL),
    ("classes.json", _plain_pickle, ALL),
]


@pytest.mark.parametrize(
    ("name", "plant", "verbs"), CASES, ids=[f"{c[0]}-{c[1].__name__.strip('_')}" for c in CASES]
)
def test_planted_run_files_never_run_code(
    name: str,
    plant: Callable[[Path, Path], None],
    verbs: tuple[str, ...],
    toy_run: Path,
    tmp_path: Path,
    make_video: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    recipe = shutil.copy(run / "recipe.yaml", tmp_path / "recipe.yaml")
    video = make_video(num_frames=8, height=32, width=32)
    marker = tmp_path / "marker"
    plant(run / name, marker)
    for verb in verbs:
        code, err = _run_cli(VERBS[verb](run, Path(recipe), video), capsys)
        _assert_refused(code, err, run / name, marker)


def test_resume_checkpoint_with_a_foreign_object_is_refused_before_lightning(
    toy_run: Path, tmp_path: Path
) -> None:
    """A checkpoint that is valid for ``weights_only=False`` but holds a non-tensor class."""
    from harkit.train.run import RunError

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    ckpt["hyper_parameters"] = {"when": __import__("datetime").date(2024, 1, 1)}
    torch.save(ckpt, run / "checkpoints/last.ckpt")
    recipe = _recipe()
    with pytest.raises(RunError, match="holds objects other than tensors and plain values"):
        train(recipe, toy_data(sum(feature_dims(recipe))), run, resume=True, progress=False)


# -- the feature store -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(manifest, store, run)``: a run trained from a real feature store."""
    root = tmp_path_factory.mktemp("store")
    manifest = render_dataset(
        root / "videos",
        SynthConfig(
            classes=["move_right", "move_left"],
            num_actors=3,
            clips_per_actor=1,
            num_frames=8,
            size=32,
            test_actors=1,
        ),
    )
    recipe = load_recipe(
        "fusion-gru",
        [
            "input.features=[{backbone: resnet18, weights: none}]",
            "input.sampling.num_frames=4",
            "input.transform.crop_size=32",
            "head.hidden=[8]",
            "optim.epochs=1",
            "optim.batch_size=4",
            "optim.val_fraction=0",
        ],
    )
    train(recipe, DatasetConfig(root=manifest), root / "run", store=root / "store", progress=False)
    return manifest, root / "store", root / "run"


def _store_folder(store: Path) -> Path:
    (folder,) = [p for p in store.iterdir() if (p / "manifest.sqlite").is_file()]
    return folder


def _pickled_npy(folder: Path, marker: Path) -> Path:
    target = sorted((folder / "features").rglob("*.npy"))[0]
    np.save(target, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return target


def _pickled_manifest(folder: Path, marker: Path) -> Path:
    target = folder / "manifest.sqlite"
    for extra in folder.glob("manifest.sqlite-*"):  # WAL / shared-memory files
        extra.unlink()
    _plain_pickle(target, marker)
    return target


def _copies(store_run: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    _, store, run = store_run
    shutil.copytree(store, tmp_path / "store")
    shutil.copytree(run, tmp_path / "run")
    recipe = Path(shutil.copy(RunPaths(tmp_path / "run").recipe, tmp_path / "recipe.yaml"))
    return tmp_path / "store", tmp_path / "run", recipe


def test_pickled_feature_file_is_never_unpickled(
    store_run: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = store_run[0]
    store, run, recipe = _copies(store_run, tmp_path)
    marker = tmp_path / "marker"
    folder = _store_folder(store)
    planted = _pickled_npy(folder, marker)
    video_id = planted.relative_to(folder / "features").as_posix().removesuffix(".npy")
    with pytest.raises(FeatureStoreError, match=str(planted)):
        FeatureStore(folder).get(video_id)
    # evaluate and train re-extract a feature file that no longer matches its manifest row.
    for argv in (
        ["evaluate", run, "--store", store],
        [
            "train",
            "--recipe",
            recipe,
            "--dataset",
            manifest,
            "--store",
            store,
            "--run",
            tmp_path / "new-run",
            "--no-progress",
        ],
    ):
        code, err = _run_cli(argv, capsys)
        assert not marker.exists(), "a planted payload ran"
        assert code == 0, err
    assert np.load(planted, allow_pickle=False).dtype == np.float16


def test_pickled_store_manifest_is_refused(
    store_run: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = store_run[0]
    store, run, recipe = _copies(store_run, tmp_path)
    marker = tmp_path / "marker"
    planted = _pickled_manifest(_store_folder(store), marker)
    for argv in (
        ["evaluate", run, "--store", store],
        [
            "train",
            "--recipe",
            recipe,
            "--dataset",
            manifest,
            "--store",
            store,
            "--run",
            tmp_path / "new-run",
            "--no-progress",
        ],
    ):
        code, err = _run_cli(argv, capsys)
        _assert_refused(code, err, planted, marker)


# -- backbone weight files -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".safetensors"])
def test_pickled_backbone_weights_file_is_refused(suffix: str, tmp_path: Path) -> None:
    from harkit.backbones.errors import WeightsLoadError
    from harkit.backbones.weights import load_state_dict_file

    marker, path = tmp_path / "marker", tmp_path / f"weights{suffix}"
    _torch_pickle(path, marker)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(WeightsLoadError) as err:
        warnings.simplefilter("always")
        load_state_dict_file(path)
    assert not marker.exists(), "a planted payload ran"
    assert str(path) in str(err.value) and "\n" not in str(err.value) and not caught
