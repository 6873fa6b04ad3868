"""Small, fast extraction settings and a tiny synthetic dataset for the feature tests."""

from __future__ import annotations

from pathlib import Path

from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.models.recipe import FeatureSource
from harkit.synth import SynthConfig, render_dataset

# 64 px crops keep real networks (ResNet18, GoogLeNet, I3D) fast enough for unit tests
SMALL = TransformConfig(crop_size=64)
FOUR = SamplingConfig(strategy="uniform", num_frames=4)
R18 = FeatureSource(backbone="resnet18", weights="none")
GOOGLENET = FeatureSource(backbone="googlenet", weights="none")


def tiny_dataset(out: Path, classes: int = 2, actors: int = 3) -> Path:
    """``classes`` x ``actors`` videos (one clip each, one test actor), 12 frames of 64x64."""
    config = SynthConfig(
        classes=["blink", "shake", "grow", "shrink"][:classes],
        num_actors=actors,
        clips_per_actor=1,
        test_actors=1,
        num_frames=12,
        size=64,
    )
    return render_dataset(out, config).parent
