"""Features mode over the real feature store: extract once, then train without decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.data.datasets import DatasetConfig
from harkit.experiments import evaluate_run
from harkit.models.recipe import load_recipe
from harkit.synth import SynthConfig, render_dataset
from harkit.train import train


def test_features_mode_trains_from_the_store_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SynthConfig(
        classes=["move_right", "move_left"],
        num_actors=3,
        clips_per_actor=1,
        num_frames=8,
        size=32,
        test_actors=1,
    )
    manifest = render_dataset(tmp_path / "videos", config)
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
    dataset = DatasetConfig(root=manifest)
    store = tmp_path / "store"
    first = train(recipe, dataset, tmp_path / "run1", store=store, progress=False).info
    assert first.feature_dims == [512] and first.counts.train == 4
    assert first.skipped_videos == 0

    # The head variant shares the cached features; training must never decode a video.
    import harkit.data.clips as clips
    import harkit.data.video as video

    def no_decoding(*args, **kwargs):
        raise AssertionError("features-mode training decoded a video")

    monkeypatch.setattr(clips, "load_clip", no_decoding)
    monkeypatch.setattr(video, "get_reader", no_decoding)
    monkeypatch.setattr(clips, "get_reader", no_decoding)
    variant = recipe.model_copy(update={"head": recipe.head.model_copy(update={"cell": "lstm"})})
    second = train(variant, dataset, tmp_path / "run2", store=store, progress=False).info
    assert second.skipped_videos == 0 and second.global_step == 1
    result = evaluate_run(tmp_path / "run2", clips=2)
    assert result.clip.num_samples == 4 and result.video.num_samples == 2
