"""Preprocessing belongs to a weights entry: two weights sources of one architecture, each with
its own input, are each fed their own by feature extraction, the feature store, the export's
recorded preprocessing and end-to-end training."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import harkit.backbones.spec as spec_module
from harkit.backbones import (
    BackboneSpec,
    Preprocessing,
    WeightsSource,
    create_backbone,
    get_backbone_spec,
    register_backbone,
)
from harkit.backbones.weights import load_state_dict_file, weights_tag

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 'a': trained on [-1, 1] input at 32 px; 'b': ImageNet statistics at 48 px, resized to 64 px
# bicubic first (an upstream eval recipe)
PREP_A = Preprocessing(32, (0.5,) * 3, (0.5,) * 3)
PREP_B = Preprocessing(48, IMAGENET_MEAN, IMAGENET_STD, resize_size=64, interpolation="bicubic")


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Backbone 'twin': one architecture, weights 'a' and 'b' (local files, full SHA-256)."""
    monkeypatch.setattr(spec_module, "_REGISTRY", dict(spec_module._REGISTRY))
    files = {}
    for seed, tag in enumerate("ab"):
        torch.manual_seed(seed)
        files[tag] = tmp_path / f"twin_{tag}.pth"
        torch.save(_net().state_dict(), files[tag])

    def build(spec: BackboneSpec, tag: str | None, state_dict):
        net = _net()
        if tag is not None:
            state_dict = load_state_dict_file(spec.weights[tag].source)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        return net

    def entry(tag: str, prep: Preprocessing) -> WeightsSource:
        digest = hashlib.sha256(files[tag].read_bytes()).hexdigest()
        return WeightsSource(str(files[tag]), prep, sha256=digest)

    register_backbone(
        BackboneSpec(
            name="twin",
            kind="frame",
            feature_dim=4,
            builder=build,
            weights={"a": entry("a", PREP_A), "b": entry("b", PREP_B)},
            default_weights="a",
        )
    )
    return files


def test_each_weights_source_has_its_own_preprocessing(twin, tmp_path: Path):
    spec = get_backbone_spec("twin")
    assert spec.preprocessing_for("a") == spec.preprocessing_for("default") == PREP_A
    assert spec.preprocessing_for("b") == PREP_B
    # random init: the documented default, the default weights' input
    assert spec.preprocessing_for("none") == spec.preprocessing == PREP_A
    for tag, prep in (("a", PREP_A), ("b", PREP_B), ("none", PREP_A)):
        model = create_backbone("twin", tag)
        assert (model.preprocessing, model.weights) == (prep, tag)
    # a copy of b's file, given as a path, is b's weights and gets b's input; another file the
    # spec's own
    copy = tmp_path / "elsewhere" / "renamed.pth"
    copy.parent.mkdir()
    shutil.copy(twin["b"], copy)
    assert spec.preprocessing_for(copy) == create_backbone("twin", copy).preprocessing == PREP_B
    other = tmp_path / "other.pth"
    torch.save(_net().state_dict(), other)
    assert spec.preprocessing_for(other) == PREP_A
    assert weights_tag(copy).startswith("file:")


def _by_hand(frames: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    x = F.resize(
        x,
        [prep.resize_size or prep.input_size],
        InterpolationMode(prep.interpolation),
        antialias=True,
    )
    x = F.center_crop(x, [prep.input_size, prep.input_size]).float() / 255
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (x - mean) / std


def test_extraction_store_and_export_use_each_weights_own_preprocessing(twin):
    from harkit.data.sampling import SamplingConfig
    from harkit.features.config import store_config
    from harkit.features.extractor import FeatureExtractor
    from harkit.features.preprocess import Preprocessor, source_key
    from harkit.infer.engine import FramePrep
    from harkit.models.recipe import FeatureSource

    sources = [FeatureSource(backbone="twin", weights=tag) for tag in "ab"]
    frames = np.random.default_rng(0).integers(0, 256, (2, 90, 120, 3), dtype=np.uint8)
    pre = Preprocessor(sources)
    assert [g.preprocessing for g in pre.groups] == [PREP_A, PREP_B]
    inputs = pre(frames)
    for group, prep in zip(pre.groups, (PREP_A, PREP_B), strict=True):
        x = inputs[group.prep_key]
        assert x.shape == (2, 3, prep.input_size, prep.input_size)
        assert torch.allclose(x, _by_hand(frames, prep), atol=1e-5)
        # what export.json records for the branch, and the fast path that follows it
        fast = FramePrep.from_transform(pre.rgb_transform(group.prep_key))
        assert fast is not None
        assert (fast.resize, fast.crop, fast.interpolation) == (
            prep.resize_size or prep.input_size,
            (prep.input_size,) * 2,
            prep.interpolation,
        )
        assert fast.mean.flatten().tolist() == pytest.approx(prep.mean)
        assert torch.allclose(fast(frames[0]), x[:1], atol=1e-5)

    # the features: each network on its own input
    features = FeatureExtractor(sources, device="cpu", precision="fp32", engine="torch")(frames)
    for tag, prep in (("a", PREP_A), ("b", PREP_B)):
        net = create_backbone("twin", tag)
        with torch.no_grad():
            expected = net(_by_hand(frames, prep))
        got = torch.as_tensor(features[source_key(FeatureSource(backbone="twin", weights=tag))])
        assert torch.allclose(got.float(), expected, atol=1e-5)

    # the feature store keys and records each weights' input
    a, b = (store_config(s, SamplingConfig()) for s in sources)
    assert (a.input_size, a.mean, a.resize_size, a.interpolation) == (
        32,
        PREP_A.mean,
        None,
        "bilinear",
    )
    assert (b.input_size, b.mean, b.std, b.resize_size, b.interpolation) == (
        48,
        IMAGENET_MEAN,
        IMAGENET_STD,
        64,
        "bicubic",
    )
    assert a.key() != b.key()


def test_end_to_end_clips_use_the_encoder_weights_preprocessing(twin):
    from harkit.data.transforms import ClipTransform
    from harkit.models.builder import pixel_input, pixel_preprocessing
    from harkit.models.recipe import load_recipe

    for tag, prep in (("a", PREP_A), ("b", PREP_B)):
        recipe = load_recipe("corehar", ["network.encoder=twin", f"network.encoder_weights={tag}"])
        assert pixel_input(recipe) == prep
        assert pixel_preprocessing(recipe) == (prep.input_size, prep.mean, prep.std)
        frames = np.random.default_rng(1).integers(0, 256, (2, 90, 120, 3), dtype=np.uint8)
        clip = ClipTransform.from_preprocessing(recipe.input.transform, pixel_input(recipe))
        assert torch.allclose(clip(frames), _by_hand(frames, prep), atol=1e-5)
