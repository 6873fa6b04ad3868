from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import harkit.backbones.spec as spec_module
from harkit.backbones import (
    Backbone,
    BackboneError,
    BackboneSpec,
    Preprocessing,
    UnknownBackboneError,
    WeightsSource,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)
from harkit.errors import HarkitError

EXPECTED = {
    # name: (kind, input size, feature dim, in channels)
    "googlenet": ("frame", 224, 1024, 3),
    "inception_resnet_v2": ("frame", 299, 1536, 3),
    "resnet18": ("frame", 224, 512, 3),
    "resnet50": ("frame", 224, 2048, 3),
    "resnet152": ("frame", 224, 2048, 3),
    "vgg16": ("frame", 224, 512, 3),
    "vgg16_fc7": ("frame", 224, 4096, 3),
    "mobilenet_v3_large": ("frame", 224, 960, 3),
    "efficientnet_lite0": ("frame", 224, 1280, 3),
    "efficientnet_lite1": ("frame", 240, 1280, 3),
    "efficientnet_lite2": ("frame", 260, 1280, 3),
    "i3d": ("segment", 224, 1024, 3),
    "i3d_flow": ("segment", 224, 1024, 2),
    "s3d": ("segment", 224, 1024, 3),
    "r3d_18": ("segment", 112, 512, 3),
    "r2plus1d_18": ("segment", 112, 512, 3),
    "tiny_image": ("frame", 16, 768, 3),
    "tiny_flow": ("frame", 16, 512, 2),
    "flow_hist": ("frame", 224, 128, 2),
}
FRAMES = 3  # clip length used for segment models (shorter than s3d.min_frames)


def test_registry_contents():
    assert set(list_backbones()) == set(EXPECTED)
    assert list_backbones(kind="segment") == sorted(
        n for n, v in EXPECTED.items() if v[0] == "segment"
    )
    assert set(list_backbones(kind="frame")) | set(list_backbones(kind="segment")) == set(EXPECTED)
    with pytest.raises(BackboneError):
        list_backbones(kind="video")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_metadata(name: str):
    spec = get_backbone_spec(name)
    kind, size, dim, channels = EXPECTED[name]
    prep = spec.preprocessing_for("default")
    assert (spec.kind, prep.input_size, spec.feature_dim, spec.in_channels) == (
        kind,
        size,
        dim,
        channels,
    )
    assert len(prep.mean) == len(prep.std) == channels
    # every entry owns its preprocessing; random init sees the default weights' input
    assert all(isinstance(w.preprocessing, Preprocessing) for w in spec.weights.values())
    assert spec.preprocessing_for("none") == spec.preprocessing == prep
    if name.startswith("tiny_") or name == "flow_hist":  # the weight-free descriptors
        assert not spec.weights and spec.default_weights == "none"
        return
    assert spec.default_weights in spec.weights
    assert spec.weights and all(spec.layers.values())


def _mean(name: str, weights: str = "default") -> tuple[float, ...]:
    return get_backbone_spec(name).preprocessing_for(weights).mean


def test_preprocessing_comes_from_the_weights():
    irv2 = get_backbone_spec("inception_resnet_v2").preprocessing_for("imagenet")
    assert irv2.mean == irv2.std == (0.5, 0.5, 0.5)  # timm pretrained_cfg
    assert _mean("resnet50", "imagenet") == pytest.approx((0.485, 0.456, 0.406))
    assert _mean("r3d_18", "kinetics") == pytest.approx((0.43216, 0.394666, 0.37645))
    # GoogLeNet's ImageNet weights (that file) expect [-1, 1] input (torchvision's
    # transform_input); so does the I3D inflated from them, and DeepMind's Kinetics I3D.
    assert _mean("googlenet", "imagenet") == (0.5, 0.5, 0.5)
    assert _mean("i3d", "imagenet") == _mean("i3d", "kinetics") == (0.5, 0.5, 0.5)
    assert get_backbone_spec("googlenet").weights["imagenet"].preprocessing is not None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_backbone_forward_shape_and_frozen(name: str):
    torch.manual_seed(0)
    spec = get_backbone_spec(name)
    model = create_backbone(name)
    batch = 1
    x = torch.randn(batch, *spec.input_shape(FRAMES))
    with torch.no_grad():
        y = model(x)
    assert isinstance(model, Backbone)
    assert y.shape == (batch, spec.feature_dim)
    assert torch.isfinite(y).all()
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.weights == "none"


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownBackboneError) as info:
        create_backbone("alexnet9000")
    assert isinstance(info.value, HarkitError)
    message = str(info.value)
    assert "alexnet9000" in message
    for name in ("googlenet", "i3d", "resnet152", "efficientnet_lite0"):
        assert name in message
    assert "timm/<model>, torchvision/<model>" in message  # any model of theirs, by name


def test_frozen_backbone_stays_in_eval_mode():
    model = create_backbone("resnet18")
    parent = nn.Sequential(model, nn.Linear(512, 3))
    parent.train()
    assert not model.training
    assert all(not m.training for m in model.modules())
    stats = model.net.bn1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64) * 5 + 3)
    assert torch.equal(model.net.bn1.running_mean, stats)


def test_backbone_can_be_deep_copied():
    model = create_backbone("resnet18").with_layers(["layer2"])
    clone = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(clone(x)["layer2"], model(x)["layer2"])
    assert clone.spec == model.spec


def test_unfrozen_backbone_trains():
    model = create_backbone("resnet18", frozen=False)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert model.net.bn1.training
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert model.net.conv1.weight.grad is not None


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("resnet18", ["layer2", "layer3"]),
        ("vgg16", ["features.23", "features.29"]),
        ("googlenet", ["inception4e"]),
        ("i3d", ["inception3b", "inception5b"]),
        ("mobilenet_v3_large", ["features.6", "features.12"]),
        ("efficientnet_lite0", ["blocks.2", "blocks.6"]),
    ],
)
def test_multi_layer_features(name: str, layers: list[str]):
    torch.manual_seed(0)
    spec = get_backbone_spec(name)
    size = 96  # every layer's pooled size is independent of the resolution
    shape = (2, 3, size, size) if spec.kind == "frame" else (1, 3, FRAMES, size, size)
    x = torch.randn(shape)
    model = create_backbone(name)
    multi = model.with_layers(layers)  # a view sharing the parameters
    with torch.no_grad():
        out = multi(x)
        pooled = model(x)
    assert set(out) == {*layers, "pooled"}
    assert out["pooled"].shape == (shape[0], spec.feature_dim)
    assert torch.allclose(out["pooled"], pooled, atol=1e-5)
    for layer in layers:
        assert out[layer].shape == (shape[0], spec.layers[layer])
    assert multi.output_dims == {"pooled": spec.feature_dim, **{k: spec.layers[k] for k in layers}}
    assert all(not p.requires_grad for p in multi.parameters())
    assert not multi.training


def test_create_backbone_with_layers():
    torch.manual_seed(0)
    multi = create_backbone("resnet18", layers=["layer1", "layer4"])
    out = multi(torch.randn(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "layer1": (2, 64),
        "layer4": (2, 512),
        "pooled": (2, 512),
    }
    # layer4 pooled == the pooled features for ResNet (GAP of the last stage)
    assert torch.allclose(out["layer4"], out["pooled"], atol=1e-6)
    with pytest.raises(BackboneError, match="already"):
        multi.with_layers(["layer2"])


def test_bad_layer_names():
    with pytest.raises(BackboneError, match="layer4"):
        create_backbone("resnet18", layers=["layer9"])
    with pytest.raises(BackboneError):
        create_backbone("resnet18", layers=["pooled"])


def test_register_custom_backbone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(spec_module, "_REGISTRY", dict(spec_module._REGISTRY))

    def build(spec, tag, state_dict):
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    @register_backbone
    def tiny() -> BackboneSpec:
        return BackboneSpec(
            name="tiny",
            kind="frame",
            preprocessing=Preprocessing(32, (0.5,) * 3, (0.5,) * 3),
            feature_dim=8,
            builder=build,
            layers={"0": 8},
        )

    assert "tiny" in list_backbones("frame")
    model = create_backbone("tiny")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)
    assert model.preprocessing == Preprocessing(32, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(BackboneError, match="already registered"):
        register_backbone(tiny)


def test_spec_validation_and_normalize():
    spec = get_backbone_spec("i3d_flow")
    prep = spec.preprocessing_for("kinetics")
    x = torch.full((1, 2, 3, 8, 8), 0.75)
    assert torch.allclose(prep.normalize(x), torch.full_like(x, 0.5))
    with pytest.raises(BackboneError):
        prep.normalize(torch.zeros(1, 3, 3, 8, 8))
    with pytest.raises(BackboneError):
        spec.input_shape()
    build = lambda *a: nn.Identity()  # noqa: E731
    rgb = Preprocessing(8, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(BackboneError, match="1 channels, the network takes 3"):
        BackboneSpec("bad", "frame", 4, build, preprocessing=Preprocessing(8, (0.5,), (0.5,)))
    with pytest.raises(BackboneError, match="default_weights 'imagenet'"):
        BackboneSpec("bad", "frame", 4, build, preprocessing=rgb, default_weights="imagenet")
    with pytest.raises(BackboneError, match="give its preprocessing"):
        BackboneSpec("bad", "frame", 4, build)  # random init needs a documented input
    with pytest.raises(BackboneError, match="weights 'b' has mean/std for 2"):
        BackboneSpec(
            "bad",
            "frame",
            4,
            build,
            preprocessing=rgb,
            weights={"b": WeightsSource("b.pth", Preprocessing(8, (0.5,) * 2, (0.5,) * 2))},
        )
    with pytest.raises(BackboneError, match="std must be positive"):
        Preprocessing(8, (0.5,) * 3, (0.5, 0.0, 0.5))
    with pytest.raises(BackboneError, match="smaller than"):
        Preprocessing(224, (0.5,) * 3, (0.5,) * 3, resize_size=200)
    with pytest.raises(BackboneError, match="interpolation"):
        Preprocessing(224, (0.5,) * 3, (0.5,) * 3, interpolation="lanczos")  # type: ignore[arg-type]
    with pytest.raises(BackboneError, match="64 hex digits"):
        WeightsSource("a.pth", sha256="abc")
