"""Issue 10 part 4: two-stream (RGB + optical flow) runs predict, stream and export.

A tiny ``i3d-gru-twostream`` (the paper recipe with small overrides) is trained the way a user
trains it: ``harkit flow`` -> ``harkit extract --flow-root`` -> ``harkit train --store``. The
inference path computes the flow of new frames itself; these tests check it against what
training saw.
"""

from __future__ import annotations

import json
import logging
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
from harkit.train.run_info import RunInfo
from tests.helpers.frames import pattern_frames
from tests.helpers.runs import TWO_STREAM_FRAMES, write_run

pytestmark = pytest.mark.slow

# The paper recipe, small: random-init I3D on 32 px crops, segments of 8 frames (ONNX Runtime
# cannot pad I3D's time axis below 8), farneback flow at 32 px (TV-L1 is tested on its own).
OVERRIDES = [
    "input.features.0.weights=none",
    "input.features.1.weights=none",
    "input.sampling.segment_length=8",
    "input.transform={resize: 32, crop_size: 32}",
    "input.flow_method=farneback",
    "head.hidden=8",
    "head.num_layers=1",
    "optim.epochs=2",
    "optim.batch_size=4",
    "optim.val_fraction=0",
]
FRAMES = 17  # 3 RGB segments (the last padded), 16 pairs = 2 flow segments: 2 steps


def _cli(*argv: str | Path) -> int:
    import harkit.cli.main as main

    return main.main([str(a) for a in argv])


def _dataset(root: Path) -> Path:
    """Two classes told apart by motion direction only: a bar moving right, or left."""
    rows = ["path,label,split,group"]
    for label in ("Right", "Left"):
        for k in range(4):
            frames = pattern_frames(FRAMES, 32, 40, seed=k + (10 if label == "Left" else 0))
            if label == "Left":
                frames = frames[::-1].copy()
            path = root / label / f"{label}_{k}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, frames, fps=25)
            rows.append(f"{label}/{path.name},{label},{'test' if k == 3 else 'train'},g{k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def _train(root: Path, overrides: list[str], fp32_store: bool = False) -> SimpleNamespace:
    """``harkit flow`` -> ``harkit extract --flow-root`` -> ``harkit train --store``."""
    from harkit.models.recipe import load_recipe

    manifest = _dataset(root / "data")
    recipe = load_recipe("i3d-gru-twostream", overrides)
    recipe_file = root / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=True)))
    flow, store, run = root / "flow", root / "store", root / "run"
    assert (
        _cli(
            "flow",
            manifest,
            "--out",
            flow,
            "--method",
            "farneback",
            "--size",
            "32",
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    assert (
        _cli(
            "extract",
            manifest,
            "--recipe",
            recipe_file,
            "--store",
            store,
            "--flow-root",
            flow,
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    if fp32_store:
        # the same features in fp32, for an exact comparison with inference (the training
        # store keeps float16; random-init I3D features are ~1e-5, below its normal range)
        assert (
            _cli(
                "extract",
                manifest,
                "--recipe",
                recipe_file,
                "--store",
                root / "store32",
                "--flow-root",
                flow,
                "--workers",
                "0",
                "--no-progress",
                "--dtype",
                "fp32",
                "--precision",
                "fp32",
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
        flow=flow,
        store=store,
        run=run,
        test_video=root / "data" / "Left" / "Left_3.mp4",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return _train(tmp_path_factory.mktemp("twostream"), OVERRIDES, fp32_store=True)


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The same recipe on the weight-free tiny_image / tiny_flow frame descriptors: features
    of order 1, so the trained head's probabilities are sensitive to the flow."""
    overrides = [
        "input.features.0.backbone=tiny_image",
        "input.features.1.backbone=tiny_flow",
        "input.sampling={strategy: uniform, num_frames: 8}",
        "optim.epochs=10",
        *(
            o
            for o in OVERRIDES
            if not o.startswith(("input.sampling", "input.transform", "optim.epochs"))
        ),
    ]
    return _train(tmp_path_factory.mktemp("twostream_tiny"), overrides)


def test_inference_features_equal_the_training_features(trained):
    """Flow computed by the predict path + both I3D streams = the feature store's rows."""
    from harkit.data.datasets import DatasetConfig, load_index
    from harkit.features.dataset import FeatureDataset, feature_stores_for

    index = load_index(DatasetConfig(root=trained.manifest))
    stores = feature_stores_for(
        trained.recipe, None, None, trained.root / "store32", dtype="float32"
    )
    dataset = FeatureDataset(index, stores, video_root=trained.manifest.parent)
    rec = Recognizer.from_run(trained.run, fast=False, flow=trained.flow)
    assert rec.model.flow.config.size == 32 and rec.model.flow.config.method == "farneback"
    for i, item in enumerate(index):
        if item.path.name not in ("Right_0.mp4", "Left_3.mp4"):
            continue
        clip = rec.load_clip(item.path)
        got = rec.features(clip.frames, clip.flow)
        want = dataset[i]["video"]
        assert got.shape == want.shape == (2, 2048)
        # relative to the features' scale; a wrong flow (e.g. the default 256 px) is ~40% off
        scale = float(want.abs().max())
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5 * scale)


def test_predict_stream_and_export_agree(trained, capsys):
    assert (
        _cli(
            "predict",
            trained.run,
            trained.test_video,
            "--json",
            "--flow-config",
            trained.flow,
            "--no-fast",
        )
        == 0
    )
    torch_pred = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert torch_pred["label"] in ("Left", "Right")

    # Streaming: the flow of each segment is computed as its frames arrive; with no state
    # resets and no smoothing the last decision is predict's.
    rec = Recognizer.from_run(trained.run, fast=False, flow=trained.flow)
    decisions = []
    stats = run_stream(
        FileSource(trained.test_video),
        rec.model,
        StreamConfig(reset="none", smoothing=0.0),
        on_decision=decisions.append,
    )
    assert stats.frames_read == FRAMES and len(decisions) == 2  # one per complete segment
    assert decisions[0].frame == 8  # segment 0's flow ends on frame 8, one after its RGB
    pred = rec.predict(trained.test_video)
    np.testing.assert_allclose(decisions[-1].probs, pred.probs, atol=1e-5)
    assert "farneback flow from each sampled frame to the next" in stats.sampling

    code = _cli(
        "stream",
        trained.run,
        "--source",
        trained.test_video,
        "--json",
        "--flow-config",
        trained.flow,
    )
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert lines[-1]["type"] == "summary" and lines[-1]["decisions"] == 2

    # Export: the flow branch is one more encoder graph; flow stays Python preprocessing.
    assert _cli("export", trained.run, "--flow-config", trained.flow) == 0
    manifest = json.loads((trained.run / "onnx" / "export.json").read_text())
    assert [b["name"] for b in manifest["branches"]] == ["0_i3d", "1_i3d_flow"]
    assert manifest["flow"]["method"] == "farneback" and manifest["flow"]["size"] == 32
    capsys.readouterr()
    assert (
        _cli(
            "predict",
            trained.run,
            trained.test_video,
            "--json",
            "--engine",
            "onnx",
            "--flow-config",
            trained.flow,
        )
        == 0
    )
    onnx_pred = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert onnx_pred["label"] == torch_pred["label"]
    want = {t["label"]: t["prob"] for t in torch_pred["top_k"]}
    for entry in onnx_pred["top_k"]:
        assert entry["prob"] == pytest.approx(want[entry["label"]], abs=1e-3)


def test_another_flow_method_is_allowed_with_a_warning(trained, caplog):
    caplog.set_level(logging.WARNING, logger="harkit.infer.flow")
    rec = Recognizer.from_run(trained.run, flow=trained.flow, flow_method="dis-fast")
    assert rec.model.flow.config.method == "dis-fast" and rec.model.flow.config.size == 32
    assert "differs from the one the run was trained on (farneback)" in caplog.text
    assert rec.predict(trained.test_video).label in ("Left", "Right")


@pytest.mark.parametrize("stride", [1, 2])
def test_tvl1_flow_of_predict_equals_harkit_flow(stride, tmp_path):
    """The recipe's TV-L1: the pairs predict computes (only the 6 it samples) are the ones
    `harkit flow` stored (also over every 2nd frame), sampled the same way."""
    from harkit.data.sampling import SamplingConfig
    from harkit.features.pipeline import load_flow_clip

    data = tmp_path / "data"
    video = data / "clip.mp4"
    video.parent.mkdir()
    write_video(video, pattern_frames(19, 32, 40), fps=25)
    (data / "manifest.csv").write_text("path,label\nclip.mp4,Right\n")
    flow = tmp_path / "flow"
    assert (
        _cli(
            "flow",
            data / "manifest.csv",
            "--out",
            flow,
            "--size",
            "32",
            "--stride",
            str(stride),
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    recipe = {
        "name": "test-tvl1",
        "mode": "features",
        "input": {
            "sampling": {"strategy": "uniform", "num_frames": 6},
            "transform": {"resize": 32, "crop_size": 32},
            "features": [
                {"backbone": "tiny_image", "weights": "none"},
                {"backbone": "tiny_flow", "weights": "none", "stream": "flow"},
            ],
        },
        "head": {"type": "two_stream", "hidden": 4, "num_layers": 1},
    }
    run = write_run(tmp_path / "run", recipe)
    rec = Recognizer.from_run(run, fast=False, flow=flow)
    assert rec.model.flow.config.method == "tvl1"
    clip = rec.load_clip(video)
    stored = load_flow_clip(video, flow, data, SamplingConfig(strategy="uniform", num_frames=6))
    assert clip.flow.shape == stored.shape == (6, 32, 40, 2)
    # the same frames, method and quantisation: equal to the last uint8 step at most
    assert np.abs(clip.flow.astype(int) - stored.astype(int)).max() <= 1


def test_frame_flow_stream_samples_training_pairs_exactly(tmp_path):
    """Per-frame flow (tiny_flow) with uniform sampling: on a file the stream takes the flow
    pairs training sampled (not consecutive sampled frames), so its final decision is
    predict's. The flow settings come from run.json's ``flow`` entry."""
    run = write_run(tmp_path / "run", TWO_STREAM_FRAMES)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "flow": {"method": "farneback", "size": 32}}))
    video = tmp_path / "clip.mp4"
    write_video(video, pattern_frames(31, 32, 40), fps=25)
    rec = Recognizer.from_run(run, fast=False)
    assert rec.model.flow.origin == "run.json" and rec.model.flow.config.size == 32
    decisions = []
    run_stream(
        FileSource(video), rec.model, StreamConfig(smoothing=0.0), on_decision=decisions.append
    )
    assert decisions[-1].final and len(decisions) == 6
    np.testing.assert_allclose(decisions[-1].probs, rec.predict(video).probs, atol=1e-5)


def test_trained_tiny_two_stream_predict_stream_export_agree(trained_tiny, capsys):
    """Probabilities that depend on the flow: predict, stream and the ONNX export agree, and
    the flow of other settings (256 px instead of the 32 px trained on) would change them."""
    rec = Recognizer.from_run(trained_tiny.run, fast=False, flow=trained_tiny.flow)
    video = trained_tiny.test_video
    pred = rec.predict(video)
    recorded = json.loads((trained_tiny.run / "run.json").read_text())["flow"]
    other = Recognizer.from_run(trained_tiny.run, fast=False, flow={**recorded, "size": 256})
    other = other.predict(video)
    assert np.abs(pred.probs - other.probs).max() > 1e-3  # the flow matters (10x the tolerance)

    decisions = []
    run_stream(
        FileSource(video), rec.model, StreamConfig(smoothing=0.0), on_decision=decisions.append
    )
    assert decisions[-1].final and len(decisions) == 8
    np.testing.assert_allclose(decisions[-1].probs, pred.probs, atol=1e-5)

    assert _cli("export", trained_tiny.run, "--flow-config", trained_tiny.flow) == 0
    onnx = Recognizer.from_run(trained_tiny.run, engine="onnx", flow=trained_tiny.flow)
    np.testing.assert_allclose(onnx.predict(video).probs, pred.probs, atol=1e-4)


def test_training_records_the_flow_settings_and_the_store_refuses_another_flow(
    trained, capsys: pytest.CaptureFixture[str]
):
    """The run remembers the flow its flow features came from, so inference needs no
    --flow-config; a store never mixes features of flows made with other settings."""
    info = json.loads((trained.run / "run.json").read_text())
    assert info["flow"]["method"] == "farneback" and info["flow"]["size"] == 32
    rec = Recognizer.from_run(trained.run, fast=False)  # no flow given: run.json's
    assert rec.model.flow.config.size == 32 and rec.model.flow.config.method == "farneback"
    other = trained.root / "flow64"
    assert (
        _cli(
            "flow",
            trained.manifest,
            "--out",
            other,
            "--method",
            "farneback",
            "--size",
            "64",
            "--workers",
            "0",
            "--no-progress",
        )
        == 0
    )
    recipe_file = trained.root / "recipe.yaml"
    code = _cli(
        "extract",
        trained.manifest,
        "--recipe",
        recipe_file,
        "--store",
        trained.store,
        "--flow-root",
        other,
        "--workers",
        "0",
        "--no-progress",
    )
    assert code == 2
    assert "size differ" in capsys.readouterr().err


def test_the_flow_a_run_was_trained_on_is_run_json_s_not_the_recipe_s(caplog):
    """Features from farneback flow files under a recipe naming another method: inference
    follows run.json without warning; another method than run.json's still warns."""
    from harkit.infer.flow import resolve_flow
    from harkit.models.recipe import load_recipe

    recipe = load_recipe("efficientnet-motion-gru")  # flow_method: dis-fast
    caplog.set_level(logging.WARNING, logger="harkit.infer.flow")
    recorded = RunInfo.model_validate({"flow": {"method": "farneback", "size": 256}})
    settings = resolve_flow(recipe, run_info=recorded)
    assert settings.config.method == "farneback" and settings.matches_training
    assert "differs" not in caplog.text
    resolve_flow(recipe, method="dis", run_info=recorded)
    assert "differs from the one the run was trained on (farneback)" in caplog.text
