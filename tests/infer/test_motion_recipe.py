"""The motion recipe (``efficientnet-motion-gru``): flow_hist motion stream + layer-normed
two-stream head, trained the way the README tells a user (``extract`` computes the sampled
flow itself, no ``harkit flow`` step), then predict, stream and the ONNX export agree."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from harkit.infer import Recognizer
from harkit.infer.sources import FileSource
from harkit.infer.stream import run_stream
from harkit.infer.stream_plan import StreamConfig
from harkit.synth import write_video

pytestmark = pytest.mark.slow

# The shipped recipe with the RGB stream on the weight-free tiny_image descriptor and small
# frames, so the test needs no ImageNet network; the motion stream and head are the recipe's.
OVERRIDES = [
    "input.features.0.backbone=tiny_image",
    "input.features.0.weights=none",
    "input.sampling.num_frames=8",
    "input.transform.crop_size=16",  # tiny_image takes 16 px
    "head.hidden=8",
    "optim.epochs=30",
    "optim.batch_size=4",
]
FRAMES = 20


def _cli(*argv: str | Path) -> int:
    import harkit.cli.main as main

    return main.main([str(a) for a in argv])


def _moving_square(direction: int, seed: int) -> np.ndarray:
    """A bright square crossing a textured background left->right (+1) or right->left (-1)."""
    background = np.random.default_rng(seed).integers(0, 120, (48, 64, 3), dtype=np.uint8)
    frames = np.repeat(background[None], FRAMES, axis=0)
    for t in range(FRAMES):
        x = 4 + round(44 * t / (FRAMES - 1))
        x = x if direction > 0 else 52 - x
        frames[t, 18:30, x : x + 12] = 250
    return frames


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from harkit.models.recipe import load_recipe

    root = tmp_path_factory.mktemp("motion")
    rows = ["path,label,split"]
    for label, direction in (("right", 1), ("left", -1)):
        for k in range(5):
            path = root / "data" / label / f"{label}_{k}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, _moving_square(direction, seed=k), fps=20)
            rows.append(f"{label}/{path.name},{label},{'test' if k == 4 else 'train'}")
    manifest = root / "data" / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    recipe = load_recipe("efficientnet-motion-gru", OVERRIDES)
    recipe_file = root / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=True)))
    store, run = root / "store", root / "run"
    assert (
        _cli(
            "extract",
            manifest,
            "--recipe",
            recipe_file,
            "--store",
            store,
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    assert (
        _cli(
            "train",
            "--recipe",
            recipe_file,
            "--dataset",
            manifest,
            "--store",
            store,
            "--run",
            run,
            "--accelerator",
            "cpu",
            "--no-progress",
        )
        == 0
    )
    return SimpleNamespace(
        root=root,
        manifest=manifest,
        recipe=recipe,
        recipe_file=recipe_file,
        store=store,
        run=run,
        test_video=root / "data" / "left" / "left_4.mp4",
    )


def test_training_records_the_flow_extraction_computed(trained):
    info = json.loads((trained.run / "run.json").read_text())
    assert info["flow"]["method"] == "dis-fast" and info["flow"]["size"] == 256
    rec = Recognizer.from_run(trained.run, fast=False)
    assert rec.model.flow.origin == "run.json"
    assert rec.predict(trained.test_video).label == "left"
    assert rec.predict(trained.root / "data" / "right" / "right_4.mp4").label == "right"


def test_extraction_without_flow_files_equals_harkit_flow_files(trained):
    """`harkit extract` without --flow-root computes the sampled pairs as `harkit flow` stores
    them: the motion features of both ways are the same numbers."""
    flow = trained.root / "flow"
    assert (
        _cli(
            "flow",
            trained.manifest,
            "--out",
            flow,
            "--method",
            "dis-fast",
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    stores = {}
    for name, extra in (("computed", []), ("files", ["--flow-root", flow])):
        stores[name] = trained.root / f"store-{name}"
        assert (
            _cli(
                "extract",
                trained.manifest,
                "--recipe",
                trained.recipe_file,
                "--store",
                stores[name],
                "--dtype",
                "fp32",
                "--workers",
                "0",
                "--no-progress",
                *extra,
            )
            == 0
        )
    from harkit.features.store import FeatureStore

    computed, files = (
        next(FeatureStore(p) for p in stores[name].glob("flow_hist-*")) for name in stores
    )
    ids = sorted(computed.done_ids())
    assert len(ids) == 10 and ids == sorted(files.done_ids())
    for vid in ids:
        np.testing.assert_array_equal(computed.get(vid), files.get(vid))
    assert float(np.abs(computed.get(ids[0])).max()) > 0  # the square moves: motion


def test_predict_stream_and_export_agree(trained):
    rec = Recognizer.from_run(trained.run, fast=False)
    pred = rec.predict(trained.test_video)
    decisions = []
    run_stream(
        FileSource(trained.test_video),
        rec.model,
        StreamConfig(smoothing=0.0),
        on_decision=decisions.append,
    )
    assert decisions[-1].final
    np.testing.assert_allclose(decisions[-1].probs, pred.probs, atol=1e-5)

    assert _cli("export", trained.run) == 0
    manifest = json.loads((trained.run / "onnx" / "export.json").read_text())
    assert [b["name"] for b in manifest["branches"]] == ["0_tiny_image", "1_flow_hist"]
    onnx = Recognizer.from_run(trained.run, engine="onnx")
    np.testing.assert_allclose(onnx.predict(trained.test_video).probs, pred.probs, atol=1e-4)
