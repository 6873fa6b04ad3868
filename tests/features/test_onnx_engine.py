"""The onnxruntime engine against the PyTorch fp32 reference, and its graph cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harkit.data.sampling import SamplingConfig
from harkit.features import FeatureExtractor, FeatureExtractorError, resolve_engine
from harkit.features.config import store_config
from harkit.models.recipe import FeatureSource
from tests.helpers.features import GOOGLENET, R18, SMALL
from tests.helpers.frames import pattern_frames


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)


def test_onnx_matches_torch_fp32_and_is_cached() -> None:
    layer = FeatureSource(backbone="resnet18", weights="none", layer="layer3")
    sources = [R18, layer, GOOGLENET]  # resnet18: two outputs of one graph
    frames = pattern_frames(5, 72, 96)
    ref = FeatureExtractor(sources, SMALL, precision="fp32", engine="torch", chunk_size=3)
    ort = FeatureExtractor(sources, SMALL, engine="onnx", chunk_size=3)
    assert ort.engine == "onnx" and ref.engine == "torch"
    want, got = ref(frames), ort(frames)
    for key in ref.keys:
        assert got[key].shape == want[key].shape and got[key].dtype == torch.float32
        worst = float(_cosines(got[key], want[key]).min())
        assert worst >= 0.999, (key, worst)
    paths = [ort.onnx_path(i, (3, 64, 64)) for i in range(len(ort.groups))]
    assert all(p.is_file() for p in paths) and len(set(paths)) == 2
    # a new extractor loads the cached graphs (same features) without exporting
    stamps = [p.stat().st_mtime_ns for p in paths]
    again = FeatureExtractor(sources, SMALL, engine="onnx")(frames)
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    for key in ref.keys:
        np.testing.assert_allclose(again[key], got[key], rtol=1e-5, atol=1e-5)
    # other outputs (an intermediate layer) are another graph
    other = FeatureExtractor([R18.model_copy(update={"layer": "layer3"})], SMALL, engine="onnx")
    assert other.onnx_path(0, (3, 64, 64)) != paths[0]


def test_engine_choice_and_store_key() -> None:
    cpu = torch.device("cpu")
    assert resolve_engine("auto", cpu, "fp32") == "onnx"
    assert resolve_engine("auto", cpu, "bf16") == "torch"
    assert resolve_engine("auto", torch.device("cuda"), "fp16") == "torch"
    with pytest.raises(FeatureExtractorError, match="CPU only"):
        resolve_engine("onnx", torch.device("cuda"), "fp32")
    with pytest.raises(FeatureExtractorError, match="unknown engine"):
        FeatureExtractor([R18], SMALL, engine="tensorrt")  # type: ignore[arg-type]
    # the engine is not a store setting: both engines fill the same stores
    sampling = SamplingConfig(strategy="uniform", num_frames=4)
    assert "engine" not in store_config(R18, sampling, SMALL).model_dump()


def test_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path))
    extractor = FeatureExtractor([R18], SMALL, engine="onnx")
    extractor(pattern_frames(2, 64, 64))
    assert list((tmp_path / "onnx").glob("resnet18-*.onnx"))
    assert not list((tmp_path / "onnx").glob(".*"))  # no temp files left by the atomic write
