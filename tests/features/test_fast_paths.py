"""Fast extraction paths (batches spanning videos, torch.compile, bf16) against fp32 eager,
within ``FEATURE_RTOL``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from harkit.data.clips import load_clip
from harkit.data.datasets import VideoIndex
from harkit.features import FeatureExtractor, extract_features, feature_stores_for
from harkit.features import extractor as extractor_module
from harkit.features import pipeline as pipeline_module
from harkit.features.engines import COMPILE_MIN_VIDEOS, auto_compile, sources_precision
from harkit.models.recipe import FeatureSource
from harkit.precision import PRECISION_ENV
from tests.helpers.features import FOUR, R18, SMALL
from tests.helpers.frames import pattern_frames
from tests.helpers.tolerances import FEATURE_RTOL

CPU = torch.device("cpu")


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest ||got - want|| / ||want|| over the time steps."""
    return ((got - want).norm(dim=1) / want.norm(dim=1)).max().item()


def test_batches_span_videos(
    tiny_index: VideoIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []

    class Recording(FeatureExtractor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            for net in self.networks:
                net.register_forward_pre_hook(lambda _, inputs: sizes.append(len(inputs[0])))

    monkeypatch.setattr(pipeline_module, "FeatureExtractor", Recording)
    report = extract_features(
        tiny_index,
        [R18],
        tmp_path,
        FOUR,
        SMALL,
        dtype="float32",
        precision="fp32",
        engine="torch",
        batch_size=5,
        num_workers=0,
        compile=False,
        progress=False,
    )
    # 6 videos x 4 frames: full calls of 5 across video boundaries, then the 4 left over
    assert report.steps == 24 and sizes == [5, 5, 5, 5, 4]
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path, dtype="float32")
    store = location.open()
    alone = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch")
    for item in tiny_index:
        want = alone(load_clip(item.path, FOUR)[0])[alone.keys[0]]
        got = torch.from_numpy(store.load_row(store.find_path(item.path)))
        assert got.shape == want.shape == (4, 512)
        assert max_rel_err(got, want) <= FEATURE_RTOL["fp32"], item.path  # each in its own rows


@pytest.mark.slow
def test_compiled_path_matches_fp32_with_one_graph(fast_precision: str) -> None:
    frames = pattern_frames(7, 72, 96)
    ref = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch", chunk_size=4)
    fast = FeatureExtractor([R18], SMALL, compile=True, chunk_size=4)
    assert (fast.precision, fast.engine, fast.compiled) == (fast_precision, "torch", True)
    key = ref.keys[0]
    want, got = ref(frames)[key], fast(frames)[key]  # 7 frames: 4, then 3 padded to 4
    assert got.shape == want.shape == (7, 512)
    assert max_rel_err(got, want) <= FEATURE_RTOL[fast_precision]
    # a shorter clip is padded to the compiled batch shape: no second compile
    with torch._dynamo.config.patch(error_on_recompile=True):
        short = fast(frames[:2])[key]
    assert max_rel_err(short, want[:2]) <= FEATURE_RTOL[fast_precision]


class _Miscompiled(torch.nn.Module):
    """What a wrong compiled graph looks like from outside: right shape, wrong values."""

    def __init__(self, net: torch.nn.Module, freezing: bool = True) -> None:
        super().__init__()
        self.net, self.freezing = net, freezing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 1.2


@pytest.mark.parametrize("unfrozen_ok", [True, False])
def test_miscompiled_network_is_recompiled_then_run_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, unfrozen_ok: bool
) -> None:
    def compile_network(net: torch.nn.Module, freezing: bool = True) -> torch.nn.Module:
        return net if unfrozen_ok and not freezing else _Miscompiled(net, freezing)

    monkeypatch.setattr(extractor_module, "compile_network", compile_network)
    # the check looks at part of the first batch; the whole batch must still come out right
    monkeypatch.setattr(extractor_module, "CHECK_ITEMS", 2)
    frames = pattern_frames(6, 72, 96)
    ref = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch", chunk_size=4)
    fast = FeatureExtractor([R18], SMALL, precision="fp32", compile=True, chunk_size=4)
    assert isinstance(fast.networks[0], _Miscompiled) and fast.networks[0].freezing
    with caplog.at_level("WARNING"):
        got = fast(frames)[fast.keys[0]]
    assert "compiling it without freezing" in caplog.text
    assert ("running it eager" in caplog.text) != unfrozen_ok
    assert fast.compile_check["resnet18"] == pytest.approx(0.0 if unfrozen_ok else 0.2, abs=1e-3)
    assert max_rel_err(got, ref(frames)[ref.keys[0]]) <= FEATURE_RTOL["fp32"]  # first batch too
    assert not isinstance(fast.networks[0], _Miscompiled)
    assert fast.describe()["frozen"] == []


def test_bf16_graph_is_held_to_eager_bf16_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bf16 graph as far from fp32 as eager bf16 is kept even over the fixed bound (deep
    networks); one far worse is not."""
    monkeypatch.setattr(extractor_module, "FEATURE_TOLERANCE", {"bf16": 1e-9})
    frames = pattern_frames(4, 72, 96)
    for wrong in (False, True):
        monkeypatch.setattr(
            extractor_module,
            "compile_network",
            lambda net, freezing=True, wrong=wrong: _Miscompiled(net) if wrong else net,
        )
        fast = FeatureExtractor([R18], SMALL, precision="bf16", compile=True, chunk_size=4)
        fast(frames)
        assert 0 < fast.compile_check["resnet18"] < (0.3 if wrong else 3e-2)
        assert isinstance(fast.networks[0], _Miscompiled) is False
        assert fast.describe()["frozen"] == ([] if wrong else ["resnet18"])


def test_auto_compile_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    big = COMPILE_MIN_VIDEOS
    monkeypatch.setenv(PRECISION_ENV, "fp32")  # onnxruntime's graphs need no compiling
    assert not auto_compile(big, [R18], CPU)
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert auto_compile(big, [R18], CPU) == (shutil.which("c++") is not None)
    assert not auto_compile(big - 1, [R18], CPU)  # a small job would spend longer compiling
    assert not auto_compile(big, [R18], CPU, precision="fp32")
    assert not auto_compile(big, [R18], CPU, engine="onnx")
    # EfficientNet-Lite0's bf16 features are out of tolerance: 'auto' keeps it fp32
    lite = FeatureSource(backbone="efficientnet_lite0", weights="none")
    assert not auto_compile(big, [lite], CPU)
    assert sources_precision([lite], "auto", CPU) == "fp32"
    assert sources_precision([lite], "bf16", CPU) == "bf16"  # asked for explicitly
    monkeypatch.setenv("CXX", "/nonexistent/c++")  # inductor would fail without a compiler
    assert not auto_compile(big, [R18], CPU)
