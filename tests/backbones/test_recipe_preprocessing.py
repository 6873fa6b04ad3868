"""The preprocessing every built-in recipe ends up using stays what it was.

``recipe_preprocessing.json`` was written by :func:`preprocessing_in_use` before the
preprocessing moved from the architecture onto each weights entry (then with
``ClipTransform(config, *pixel_preprocessing(recipe))``, the end-to-end path of that time);
``python -m tests.backbones.test_recipe_preprocessing`` rewrites it: only on purpose.
It pins, per recipe: each feature group's eval transform (resize, crop, interpolation,
mean/std), the values export.json records for it (``FramePrep``), the tensor it makes of a
fixed clip, and each source's feature-store key; for end-to-end recipes the same for the
train and eval transforms of the clips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

SNAPSHOT = Path(__file__).with_name("recipe_preprocessing.json")


def _clip(*lead: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(*lead, 90, 120, channels), dtype=np.uint8)


def _tensor_summary(x: torch.Tensor) -> dict[str, Any]:
    x = x.double()
    return {"shape": list(x.shape), "sum": float(x.sum()), "abs_sum": float(x.abs().sum())}


def _transform_summary(transform: Any) -> dict[str, Any]:
    from harkit.infer.engine import FramePrep

    prep = FramePrep.from_transform(transform)
    export = None
    if prep is not None:  # what harkit.infer.export records as the branch's preprocessing
        export = {
            "resize_shorter_side": prep.resize,
            "center_crop": list(prep.crop),
            "mean": prep.mean.flatten().tolist(),
            "std": prep.std.flatten().tolist(),
        }
    return {
        "pipeline": repr(transform),
        "output_size": list(transform.output_size),
        "export": export,
    }


def preprocessing_in_use(name: str) -> dict[str, Any]:
    """What recipe ``name`` feeds its networks (see the module docstring)."""
    from harkit.data.transforms import ClipTransform
    from harkit.features.config import store_config
    from harkit.features.preprocess import Preprocessor, source_key
    from harkit.models.builder import pixel_input
    from harkit.models.recipe import load_recipe

    recipe = load_recipe(name)
    if recipe.mode == "features":
        pre = Preprocessor(recipe.input.features, recipe.input.transform)
        groups = []
        segments = recipe.input.sampling.strategy == "segments"
        lead = (2, 8) if segments else (3,)
        tensors = pre(_clip(*lead), _clip(*lead, channels=2))
        for group in pre.groups:
            out = tensors[group.prep_key]
            transform = pre.rgb_transform(group.prep_key)
            groups.append(
                {
                    "backbone": group.backbone,
                    "weights": group.weights,
                    "stream": group.stream,
                    "transform": None if transform is None else _transform_summary(transform),
                    "tensor": _tensor_summary(out),
                }
            )
        keys = {
            source_key(s): store_config(
                s,
                recipe.input.sampling,
                recipe.input.transform,
                flow_method=recipe.input.flow_method,
            ).key()
            for s in recipe.input.features
        }
        return {"mode": "features", "groups": groups, "store_keys": keys}
    # as harkit.train.data.pixel_datasets and harkit.infer.pipeline make them
    prep = pixel_input(recipe)
    out: dict[str, Any] = {
        "mode": recipe.mode,
        "pixel_preprocessing": [prep.input_size, list(prep.mean), list(prep.std)],
    }
    for split, config, train in (
        ("eval", recipe.input.transform, False),
        ("train", recipe.input.train_transform or recipe.input.transform, True),
    ):
        transform = ClipTransform.from_preprocessing(config, prep, train=train)
        summary = _transform_summary(transform) if not train else {"pipeline": repr(transform)}
        if not train:
            summary["tensor"] = _tensor_summary(transform(_clip(3)))
        out[split] = summary
    return out


def _recipes() -> list[str]:
    from harkit.models.recipe import list_recipes

    return list_recipes()


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between two snapshots (floats to 1e-6 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = [f"{path}: keys {sorted(a)} != {sorted(b)}"] if set(a) != set(b) else []
        return diffs + [d for k in a.keys() & b.keys() for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _close(x, y, f"{path}[{i}]")
        ]
    if isinstance(a, float) or isinstance(b, float):
        ok = a == pytest.approx(b, rel=1e-6, abs=1e-9)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_snapshot_covers_every_builtin_recipe():
    assert sorted(json.loads(SNAPSHOT.read_text())) == _recipes()


@pytest.mark.parametrize("name", _recipes())
def test_recipe_preprocessing_is_unchanged(name: str):
    expected = json.loads(SNAPSHOT.read_text())[name]
    actual = json.loads(json.dumps(preprocessing_in_use(name)))  # tuples -> lists
    assert _close(actual, expected) == []


if __name__ == "__main__":  # regenerate the snapshot: only when a change is meant
    snapshot = {name: preprocessing_in_use(name) for name in _recipes()}
    SNAPSHOT.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} ({len(snapshot)} recipes)")
