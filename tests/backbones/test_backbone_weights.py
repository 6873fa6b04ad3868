from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from harkit.backbones import (
    WeightsLoadError,
    WeightsUnavailableError,
    create_backbone,
    load_state_dict_file,
    weights_tag,
)
from harkit.errors import HarkitError


@pytest.fixture(scope="module")
def resnet18_reference(tmp_path_factory: pytest.TempPathFactory):
    """A full torchvision resnet18 (with fc) saved as .pth and .safetensors."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    full = resnet18(weights=None).eval()
    folder = tmp_path_factory.mktemp("r18")
    state = full.state_dict()
    torch.save(state, folder / "resnet18.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "resnet18.safetensors"))
    full.fc = nn.Identity()
    return full, folder


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_file_round_trip(resnet18_reference, suffix: str):
    full, folder = resnet18_reference
    path = folder / f"resnet18{suffix}"
    model = create_backbone("resnet18", weights=path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), full(x), atol=1e-6)
    assert model.weights == weights_tag(path)
    assert model.weights.startswith("file:")


def test_nested_checkpoint_and_dataparallel_prefix(resnet18_reference, tmp_path: Path):
    full, folder = resnet18_reference
    state = load_state_dict_file(folder / "resnet18.pth")
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = create_backbone("resnet18", weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), full(x), atol=1e-6)


def test_i3d_3d_state_dict_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    source = create_backbone("i3d")
    path = tmp_path / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in source.net.state_dict().items()}, str(path))
    loaded = create_backbone("i3d", weights=path)  # rank-5 stem: loaded as it is
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_mismatched_state_dict_names_the_keys(resnet18_reference):
    _, folder = resnet18_reference
    with pytest.raises(WeightsLoadError) as info:
        create_backbone("resnet50", weights=folder / "resnet18.pth")
    message = str(info.value)
    assert "resnet50" in message
    assert "missing keys" in message and "layer1.0.conv3.weight" in message
    assert "shape mismatch" in message


def test_bad_weights_arguments(tmp_path: Path):
    with pytest.raises(WeightsLoadError, match="kinetics"):
        create_backbone("googlenet", weights="kinetics")
    with pytest.raises(WeightsLoadError, match="none of these"):
        create_backbone("resnet18", weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsLoadError, match=r"junk\.pth is not a PyTorch checkpoint"):
        create_backbone("resnet18", weights=junk)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsLoadError, match=r"empty.pt is empty \(0 bytes\)"):
        load_state_dict_file(empty)
    truncated = tmp_path / "truncated.pt"
    torch.save({"w": torch.zeros(64)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])  # a zip cut short
    with pytest.raises(WeightsLoadError, match="cannot read weights file"):
        load_state_dict_file(truncated)
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(WeightsLoadError, match="state_dict"):
        load_state_dict_file(not_weights)


@pytest.mark.parametrize(
    ("name", "weights", "filename"),
    [
        ("googlenet", "imagenet", "googlenet-1378be20.pth"),
        ("i3d", "imagenet", "googlenet-1378be20.pth"),  # inflated from the 2D weights
        ("r3d_18", "kinetics", "r3d_18-b3b3357e.pth"),
        ("resnet152", "default", "resnet152-f82ba261.pth"),
    ],
)
def test_offline_download_names_file_and_folder(offline: Path, name, weights, filename):
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone(name, weights=weights)
    assert isinstance(info.value, HarkitError)
    message = str(info.value)
    assert filename in message
    assert str(offline) in message
    assert str(Path(torch.hub.get_dir()) / "checkpoints") in message
    assert "weights=PATH" in message


def test_offline_timm_names_hub_file(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    # nothing cached, and the Hub unreachable (the weights are fetched, and hash-checked,
    # before timm builds the model)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    with pytest.raises(WeightsUnavailableError) as info:
        create_backbone("inception_resnet_v2", weights="imagenet")
    message = str(info.value)
    assert "huggingface.co/timm/inception_resnet_v2.tf_in1k" in message
    assert "models--timm--inception_resnet_v2.tf_in1k" in message
    assert "weights=PATH" in message


def test_cached_download_is_used(offline: Path, resnet18_reference, monkeypatch):
    """A file put where the error message says is picked up (no network involved)."""
    _, folder = resnet18_reference
    offline.mkdir(parents=True)
    shutil.copy(folder / "resnet18.pth", offline / "resnet18-f37072fd.pth")

    def from_cache(url: str, model_dir: str, **kwargs):
        path = Path(model_dir) / Path(url).name
        if not path.is_file():
            raise urllib.error.URLError("network disabled in tests")
        return torch.load(path, map_location="cpu", weights_only=True)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", from_cache)
    model = create_backbone("resnet18", weights="imagenet")
    assert model.weights == "imagenet"


def test_weights_tag(tmp_path: Path):
    assert weights_tag(None) == weights_tag("none") == "none"
    assert weights_tag("imagenet") == "imagenet"
    assert weights_tag("kinetics") == "kinetics"
    a = tmp_path / "a.pt"
    torch.save({"w": torch.ones(2)}, a)
    b = tmp_path / "moved" / "b.pt"
    b.parent.mkdir()
    shutil.copy(a, b)
    tag = weights_tag(a)
    assert tag == weights_tag(b) == weights_tag(str(b))
    assert tag.startswith("file:") and len(tag) == len("file:") + 16
    torch.save({"w": torch.zeros(2)}, b)
    assert weights_tag(b) != tag
    with pytest.raises(WeightsLoadError):
        weights_tag(tmp_path / "nope.pt")


def test_random_weights_are_the_same_in_every_process():
    import torch

    from harkit.backbones import create_backbone

    torch.manual_seed(1)
    first = create_backbone("resnet18", "none").state_dict()
    torch.manual_seed(2)
    second = create_backbone("resnet18", "none").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
