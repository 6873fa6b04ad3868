import pytest
import torch

from harkit.config import ConfigError, parse_config
from harkit.models.builder import build_model, feature_dims, pixel_preprocessing
from harkit.models.networks import count_parameters
from harkit.models.recipe import Recipe, list_recipes, load_recipe

# Offline: the CRNN's pretrained ResNet152 cannot be downloaded; a random ResNet18 stands in.
CRNN_OFFLINE = ["network.encoder_weights=none", "network.encoder=resnet18"]


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_builds_and_runs(name):
    recipe = load_recipe(name)
    if recipe.network is not None and recipe.network.type == "crnn":
        recipe = load_recipe(name, CRNN_OFFLINE)
    model = build_model(recipe, num_classes=3)
    if recipe.mode == "features":
        x = torch.randn(2, 4, sum(feature_dims(recipe)))
    else:
        size = pixel_preprocessing(recipe)[0]
        frames = recipe.input.sampling.num_frames if recipe.network.type != "crnn" else 3
        size = 32 if recipe.network.type == "crnn" else size  # from-scratch nets: fixed size
        x = torch.randn(2, frames, 3, size, size)
    lengths = torch.tensor([x.shape[1], x.shape[1] - 1])
    model.eval()
    with torch.no_grad():
        assert model(x, lengths).shape == (2, 3)


def test_paper_parameter_counts_through_the_recipes():
    twostream = build_model(load_recipe("i3d-gru-twostream"), num_classes=51)
    assert abs(count_parameters(twostream) - 2_768_692) / 2_768_692 < 0.002
    lstm = build_model(load_recipe("ablations/i3d-lstm-2x256"), num_classes=51)
    assert abs(count_parameters(lstm) - 3_687_220) / 3_687_220 < 0.002
    c3d = build_model(load_recipe("c3d-gru"), num_classes=4)
    assert count_parameters(c3d) == 1_312 + 13_856 + 55_360 + 3_588_864 + 516
    assert feature_dims(load_recipe("fusion-gru")) == [1536, 1024]


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    with pytest.raises(ConfigError, match=r"head\.hiden"):
        load_recipe("fusion-gru", ["head.hiden=3"])
    with pytest.raises(ConfigError, match="features mode needs a head"):
        parse_config(
            Recipe,
            {"name": "x", "mode": "features", "input": {"features": [{"backbone": "resnet18"}]}},
            "r.yaml",
        )
    bad = tmp_path / "r.yaml"
    bad.write_text("base: fusion-gru\ninput:\n  features: [{backbone: resnet18, layer: conv9}]\n")
    with pytest.raises(ConfigError, match="no layer 'conv9'"):
        build_model(load_recipe(bad), 3)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_recipe(loop)
