"""Run folders for inference tests, written with ``harkit.train.run``'s own writers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harkit.config import parse_config
from harkit.models.builder import build_model
from harkit.models.recipe import Recipe
from harkit.train.run import (
    RunInfo,
    RunPaths,
    save_weights,
    write_recipe_and_classes,
    write_run_info,
)

CLASSES = ["Diving", "Fencing", "Rowing"]

# Small inputs keep CNNs cheap on a shared CPU; weights 'none' needs no download.
RECIPES: dict[str, dict[str, Any]] = {
    "gru_features": {
        "name": "test-gru",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "uniform", "num_frames": 8},
            "transform": {"resize": 40, "crop_size": 32},
            "features": [{"backbone": "resnet18", "weights": "none"}],
        },
        "head": {"type": "recurrent", "cell": "gru", "hidden": 16},
    },
    "wide_features": {  # a [height, width] crop: the whole 4:3 frame
        "name": "test-wide",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "uniform", "num_frames": 8},
            "transform": {"crop_size": [24, 32]},
            "features": [{"backbone": "resnet18", "weights": "none"}],
        },
        "head": {"type": "recurrent", "cell": "gru", "hidden": 16},
    },
    "grid_features": {  # where things are: layer4's map averaged over 2x2 cells
        "name": "test-grid",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "uniform", "num_frames": 8},
            "transform": {"crop_size": [64, 96]},
            "features": [{"backbone": "resnet18", "weights": "none", "layer": "layer4", "grid": 2}],
        },
        "head": {"type": "recurrent", "cell": "gru", "hidden": 16, "norm": "layer"},
    },
    "small2d": {
        "name": "test-small2d",
        "mode": "end_to_end",
        "input": {"sampling": {"strategy": "all", "max_frames": 16}},
        "network": {"type": "small2d_gru", "size": 32, "units": 16},
    },
    "bilstm_crnn": {
        "name": "test-corehar",
        "mode": "end_to_end",
        "input": {
            "sampling": {"strategy": "stride", "stride": 4, "max_frames": 8},
            "transform": {"resize": 32, "crop_size": 32},
        },
        "network": {
            "type": "crnn",
            "encoder": "resnet18",
            "encoder_weights": "none",
            "embed": [32, 16],
        },
        "head": {
            "type": "recurrent",
            "cell": "lstm",
            "hidden": 16,
            "num_layers": 2,
            "bidirectional": True,
            "fc": [8],
        },
    },
    "c3d": {
        "name": "test-c3d",
        "mode": "end_to_end",
        "input": {"sampling": {"strategy": "uniform", "num_frames": 16}},
        "network": {"type": "c3d_gru", "size": 32, "units": 16, "dropout": 0.0},
    },
    "segments_r3d": {
        "name": "test-r3d-segments",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "segments", "segment_length": 4, "max_segments": 6},
            "transform": {"resize": 32, "crop_size": 32},
            "features": [{"backbone": "r3d_18", "weights": "none"}],
        },
        "head": {"type": "recurrent", "cell": "gru", "hidden": 8},
    },
    "flow_stream": {
        "name": "test-flow",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "segments", "segment_length": 8},
            "features": [{"backbone": "i3d_flow", "weights": "none", "stream": "flow"}],
        },
        "head": {"type": "recurrent", "hidden": 8},
    },
    "attention_two_layer": {
        "name": "test-attn",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "uniform", "num_frames": 6},
            "transform": {"resize": 32, "crop_size": 32},
            "features": [
                {"backbone": "resnet18", "weights": "none", "layer": "layer3"},
                {"backbone": "resnet18", "weights": "none", "layer": "layer4"},
            ],
        },
        "head": {"type": "dual_layer_attention", "cell": "lstm", "hidden": 8},
    },
}


def write_run(
    root: Path, recipe: Recipe | dict[str, Any], classes: list[str] = CLASSES, seed: int = 0
) -> Path:
    """A run folder: recipe.yaml, classes.json, model.safetensors, run.json."""
    if isinstance(recipe, dict):
        recipe = parse_config(Recipe, recipe, source="test")
    paths = RunPaths(root)
    torch.manual_seed(seed)
    model = build_model(recipe, len(classes))
    write_recipe_and_classes(paths, recipe, classes)
    save_weights(model, paths.weights)
    write_run_info(paths, RunInfo(mode=recipe.mode))
    return root


# the motion recipe's shape: per-frame RGB + per-frame flow descriptors, uniform sampling
TWO_STREAM_FRAMES = {
    "name": "test-tiny-twostream",
    "mode": "features",
    "input": {
        "sampling": {"strategy": "uniform", "num_frames": 6},
        "features": [
            {"backbone": "tiny_image", "weights": "none"},
            {"backbone": "tiny_flow", "weights": "none", "stream": "flow"},
        ],
        "flow_method": "farneback",
    },
    "head": {"type": "two_stream", "hidden": 4, "num_layers": 1},
}
