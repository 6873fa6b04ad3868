"""Every recipe (the five + ablations) trains one epoch on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harkit.data.datasets import DatasetConfig
from harkit.experiments import evaluate_run
from harkit.models.builder import feature_dims
from harkit.models.recipe import list_recipes, load_recipe
from harkit.models.registry import section_keys
from harkit.synth import SynthConfig, render_dataset
from harkit.train import load_run, train

FEATURE_RECIPES = [n for n in list_recipes() if load_recipe(n).mode == "features"]
E2E_RECIPES = [n for n in list_recipes() if load_recipe(n).mode == "end_to_end"]
TINY = ["optim.epochs=1", "optim.batch_size=4", "optim.num_workers=0"]


def tiny_e2e_overrides(name: str) -> list[str]:
    if load_recipe(name).network.type == "crnn":
        return [
            "network.encoder=resnet18",
            "network.encoder_weights=none",
            "network.embed=[16]",
            "head.hidden=8",
            "head.num_layers=1",
            "head.fc=[]",
            "input.sampling.max_frames=4",
            "input.transform.crop_size=32",
            "input.train_transform={crop_size: 32, resize: 36, random_crop: true, hflip: 0.5,"
            " rotation: 5}",
        ]
    return ["input.sampling.num_frames=8", "network.size=16", "network.units=8"]


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SynthConfig(
        classes=["move_right", "move_left"],
        num_actors=3,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=1,
    )
    return render_dataset(tmp_path_factory.mktemp("synth"), config)


def test_recipe_lists_cover_all_five_papers() -> None:
    names = set(FEATURE_RECIPES) | set(E2E_RECIPES)
    assert {"fusion-gru", "i3d-gru-twostream", "corehar", "c3d-gru", "attn-lstm"} <= names
    assert len(names) == len(list_recipes())


@pytest.mark.slow
@pytest.mark.parametrize("name", FEATURE_RECIPES)
def test_features_recipe_trains_one_epoch(name: str, toy, tmp_path: Path) -> None:
    # each head type takes only its own keys: shrink the ones it has
    keys = section_keys("head", load_recipe(name).head.type) or []
    tiny = [f"head.{k}={v}" for k, v in (("hidden", 8), ("fc", "[]")) if k in keys]
    recipe = load_recipe(name, [*TINY, *tiny])
    dim = sum(feature_dims(recipe))
    info = train(
        recipe,
        toy(dim, n_train=8, n_val=4, n_test=4, ragged=True),
        tmp_path / "run",
        progress=False,
    ).info
    assert info.global_step == 2 and info.feature_dims == feature_dims(recipe)
    _, _, model = load_run(tmp_path / "run")
    out = model(torch.randn(3, 5, dim), torch.tensor([5, 3, 1]))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", E2E_RECIPES)
def test_end_to_end_recipe_trains_one_epoch(name: str, tiny_videos: Path, tmp_path: Path) -> None:
    recipe = load_recipe(name, [*TINY, "optim.val_fraction=0", *tiny_e2e_overrides(name)])
    info = train(recipe, DatasetConfig(root=tiny_videos), tmp_path / "run", progress=False).info
    assert info.counts.model_dump() == {"train": 4, "val": 0, "test": 2}
    assert info.leakage.startswith("checked")
    # the typical training clip (headers of the 4 training videos), which streams space by
    assert info.train_clips.videos == 4 and info.train_clips.frames > 1
    assert info.global_step == 1
    result = evaluate_run(tmp_path / "run", clips=2)
    assert result.video is not None and result.video.num_samples == 2
    assert result.clip.num_samples == 4
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "Leakage check: checked" in report
    # the paper's numbers of this configuration stand beside harkit's
    assert ("## Paper vs harkit" in report) == bool(recipe.reported)
