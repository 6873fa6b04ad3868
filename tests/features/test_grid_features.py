"""Grid features: a layer's map averaged over grid x grid cells keeps where things are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harkit.backbones import create_backbone
from harkit.backbones.module import grid_pool
from harkit.config import ConfigError
from harkit.data.datasets import DatasetConfig, load_index
from harkit.features import FeatureDataset, FeatureExtractor, extract_features, feature_stores_for
from harkit.features.config import store_config
from harkit.models.builder import source_dim
from harkit.models.recipe import FeatureSource, load_recipe
from tests.helpers.features import FOUR, SMALL
from tests.helpers.frames import pattern_frames

R18_GRID = FeatureSource(backbone="resnet18", weights="none", layer="layer4", grid=2)
R18_LAYER4 = FeatureSource(backbone="resnet18", weights="none", layer="layer4")


@pytest.mark.parametrize("shape", [(7, 10), (4, 4), (5, 3)])
@pytest.mark.parametrize("grid", [1, 2, 3])
def test_grid_pool_is_adaptive_average_pooling(shape, grid):
    x = torch.randn(2, 3, *shape)
    torch.testing.assert_close(grid_pool(x, grid), F.adaptive_avg_pool2d(x, grid).flatten(1))


def test_grid_cells_keep_where_and_average_to_the_global_pool():
    net = create_backbone("resnet18", "none", ["layer4"], grid=2)
    pooled = create_backbone("resnet18", "none", ["layer4"])
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        cells, whole = net(x)["layer4"], pooled(x)["layer4"]
    assert cells.shape == (3, 512 * 4) and net.output_dims["layer4"] == 2048
    # an even map: the four cells' mean is the global mean
    torch.testing.assert_close(cells.view(3, 512, 4).mean(-1), whole, atol=1e-5, rtol=1e-5)


def test_a_grid_needs_a_layer_and_sizes_follow():
    with pytest.raises(ValueError, match="grid 2 pools a layer's map"):
        FeatureSource(backbone="resnet18", weights="none", grid=2)
    with pytest.raises(ConfigError, match="grid"):
        load_recipe("efficientnet-gru", ["input.features.0.grid=9"])
    recipe = load_recipe(
        "efficientnet-gru", ["input.features.0.layer=bn2", "input.features.0.grid=3"]
    )
    assert source_dim(recipe.input.features[0]) == 1280 * 9
    assert source_dim(R18_GRID) == 2048
    # its own store: grid is part of the key, the pooled store keeps its old key
    grid_cfg, plain_cfg = (store_config(s, FOUR, SMALL) for s in (R18_GRID, R18_LAYER4))
    assert grid_cfg.key() != plain_cfg.key() and "grid2" in grid_cfg.folder_name()
    assert "grid" not in plain_cfg.folder_name()


def test_extractor_runs_grid_and_whole_map_sources_apart():
    frames = pattern_frames(3, 64, 64)
    extractor = FeatureExtractor([R18_GRID, R18_LAYER4], SMALL, precision="fp32", engine="torch")
    assert len(extractor.networks) == 2  # one per grid
    out = extractor(frames)
    keys = extractor.keys
    assert keys[0].endswith("layer4@2x2") and keys[1].endswith("layer4")
    assert out[keys[0]].shape == (3, 2048) and out[keys[1]].shape == (3, 512)
    torch.testing.assert_close(
        out[keys[0]].view(3, 512, 4).mean(-1), out[keys[1]], atol=1e-5, rtol=1e-5
    )


def test_onnx_engine_matches_torch_for_grid_features(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path))
    lite = FeatureSource(backbone="efficientnet_lite0", weights="none", layer="bn2", grid=2)
    frames = pattern_frames(3, 48, 64)
    wide = SMALL.model_copy(update={"crop_size": [48, 64]})  # a 2x2 map: cells of 1 x 1
    ref = FeatureExtractor([lite], wide, precision="fp32", engine="torch")(frames)
    got = FeatureExtractor([lite], wide, precision="fp32", engine="onnx")(frames)
    for key in ref:
        assert ref[key].shape == (3, 1280 * 4)
        np.testing.assert_allclose(got[key].numpy(), ref[key].numpy(), rtol=1e-4, atol=1e-5)


def test_grid_features_through_the_store(tiny_root: Path, tmp_path: Path) -> None:
    index = load_index(DatasetConfig(root=tiny_root))
    report = extract_features(
        index, [R18_GRID], tmp_path, FOUR, SMALL, num_workers=0, progress=False
    )
    assert report.extracted == len(index) and report.failed == 0
    dataset = FeatureDataset(index, feature_stores_for([R18_GRID], FOUR, SMALL, tmp_path))
    assert dataset[0]["video"].shape == (4, 2048)
