"""Any timm / torchvision classification model as a backbone by name."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from harkit.backbones import (
    BackboneError,
    UnknownBackboneError,
    WeightsUnavailableError,
    create_backbone,
    get_backbone_spec,
    list_backbones,
)

SMALL = ["timm/resnet10t", "timm/mobilenetv3_small_050", "torchvision/mobilenet_v3_small"]


def test_timm_preprocessing_comes_from_its_pretrained_cfg():
    import timm
    from timm.data import resolve_data_config

    spec = get_backbone_spec("timm/resnet10t")
    cfg = resolve_data_config({}, model=timm.create_model("resnet10t", pretrained=False))
    prep = spec.preprocessing_for("imagenet")
    assert prep.input_size == cfg["input_size"][-1] == 176  # resnet10t's own train size
    assert (prep.resize_size, prep.interpolation) == (None, "bilinear")  # harkit's, as always
    assert prep.mean == pytest.approx(cfg["mean"]) and prep.std == pytest.approx(cfg["std"])
    assert spec.preprocessing_for("none") == prep  # random init sees the same input
    assert {k: w.source for k, w in spec.weights.items()} == {"imagenet": "resnet10t.c3_in1k"}
    tagged = get_backbone_spec("timm/convnext_tiny.fb_in1k")  # an explicit pretrained tag
    assert tagged.weights["imagenet"].source == "convnext_tiny.fb_in1k"
    assert tagged.feature_dim == 768
    assert "timm/resnet10t" not in list_backbones()  # names resolve; the zoo stays the zoo


def test_torchvision_preprocessing_comes_from_its_weights():
    from torchvision.models import get_model_weights

    spec = get_backbone_spec("torchvision/mobilenet_v3_small")
    weights = get_model_weights("mobilenet_v3_small").DEFAULT
    transforms = weights.transforms()
    prep = spec.preprocessing_for("imagenet")
    assert (prep.input_size, prep.resize_size) == (224, None)  # resized to the crop
    assert prep.mean == pytest.approx(transforms.mean) and prep.std == pytest.approx(transforms.std)
    entry = spec.weights["imagenet"]
    assert entry.source == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert entry.url == weights.url and entry.expected_hash == "047dcff4"  # checked on download


@pytest.mark.parametrize(
    ("name", "dim"),
    [
        ("timm/resnet10t", 512),
        # MobileNetV3's pre-logits conv makes the output 1024-d while timm's num_features
        # is 576 / 288: the size is probed, not read off an attribute
        ("timm/mobilenetv3_small_050", 1024),
        ("torchvision/mobilenet_v3_small", 1024),
    ],
)
def test_random_weights_frozen_and_seeded(name: str, dim: int):
    spec = get_backbone_spec(name)
    assert spec.feature_dim == dim
    x = torch.randn(2, *spec.input_shape())
    torch.manual_seed(1)
    first = create_backbone(name, "none")
    torch.manual_seed(2)
    second = create_backbone(name)  # 'none' is the default
    with torch.no_grad():
        out = first(x)
        assert torch.equal(out, second(x))  # the same network in every process
    assert out.shape == (2, dim)
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in create_backbone(name, frozen=False).parameters())


def test_timm_weights_file_by_path(tmp_path: Path):
    import timm

    torch.manual_seed(3)
    full = timm.create_model("resnet10t", pretrained=False).eval()  # with its classifier
    path = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    model = create_backbone("timm/resnet10t", path)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = full.forward_head(full.forward_features(x), pre_logits=True)
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert model.weights.startswith("file:")


def test_torchvision_weights_file_by_path(tmp_path: Path):
    from torchvision.models import googlenet, mobilenet_v3_small

    torch.manual_seed(4)
    full = mobilenet_v3_small(weights=None).eval()
    path = tmp_path / "mnv3s.pth"
    torch.save(full.state_dict(), path)
    model = create_backbone("torchvision/mobilenet_v3_small", path)
    full.classifier[3] = nn.Identity()  # the last Linear is the classifier harkit removes
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), full(x), atol=1e-6)

    # torchvision's GoogLeNet file carries aux heads; its weights expect transform_input
    torch.manual_seed(5)
    full = googlenet(weights=None, aux_logits=True, init_weights=True).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(full.state_dict(), path)
    model = create_backbone("torchvision/googlenet", path)
    full.transform_input, full.fc = True, nn.Identity()
    with torch.no_grad():
        assert torch.allclose(model(x), full(x), atol=1e-5)


def test_offline_torchvision_names_file_and_folder(offline: Path):
    from torchvision.models import get_weight

    url = get_weight("MobileNet_V3_Small_Weights.IMAGENET1K_V1").url
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone("torchvision/mobilenet_v3_small", "imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert os.path.basename(urlparse(url).path) in message and str(offline) in message
    assert "weights=PATH" in message


def test_offline_timm_names_hub_file(monkeypatch: pytest.MonkeyPatch):
    import timm

    create = timm.create_model

    def no_network(name, *args, pretrained=False, **kwargs):
        if pretrained:  # what huggingface_hub raises offline, without its minute of retries
            raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your network")
        return create(name, *args, **kwargs)

    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone("timm/resnet10t", "imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "huggingface.co/timm/resnet10t.c3_in1k" in message
    assert "models--timm--resnet10t.c3_in1k" in message
    assert "weights=PATH" in message


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("timm/no_such_net", UnknownBackboneError, "timm has no model 'no_such_net'"),
        ("timm/resnet10t.no_such_tag", UnknownBackboneError, "c3_in1k"),
        ("torchvision/no_such_net", UnknownBackboneError, "no classification model"),
        ("torchvision/squeezenet1_0", BackboneError, "no nn.Linear classifier"),
        ("keras/resnet50", UnknownBackboneError, "timm/<model>, torchvision/<model>"),
    ],
)
def test_bad_names(name: str, error: type[Exception], words: str):
    with pytest.raises(error) as info:
        get_backbone_spec(name)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_recipe_takes_a_named_backbone_and_set_reaches_its_weights(tmp_path: Path):
    import timm

    from harkit.config import load_config
    from harkit.data.sampling import SamplingConfig
    from harkit.features.config import store_config
    from harkit.models.recipe import Recipe

    torch.manual_seed(6)
    weights = tmp_path / "mine.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), weights)
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "name: mine\nmode: features\n"
        "input:\n  features:\n    - {backbone: timm/resnet10t, weights: imagenet}\n"
        "head: {type: recurrent, hidden: 8}\n"
    )
    recipe = load_config(Recipe, path, [f"input.features.0.weights={weights}"])
    source = recipe.input.features[0]
    assert (source.backbone, source.weights) == ("timm/resnet10t", str(weights))
    config = store_config(source, SamplingConfig())
    assert (config.feature_dim, config.input_size) == (512, 176)
    assert create_backbone(source.backbone, source.weights).weights == config.weights
