"""The stream engine's measured choice (harkit.infer.engine with harkit.engine_choice):
injected timings only, no timing asserted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harkit.config import parse_config
from harkit.engine_choice import ChoiceCache
from harkit.infer import engine as engine_mod
from harkit.infer.engine import ProbeSettings, build_stream_engine
from harkit.infer.pipeline import split_model
from harkit.models.builder import build_model
from harkit.models.recipe import Recipe

RECIPE = {
    "name": "probe-gru",
    "mode": "features",
    "input": {
        "sampling": {"strategy": "uniform", "num_frames": 8},
        "transform": {"resize": 40, "crop_size": 32},
        "features": [{"backbone": "resnet18", "weights": "none"}],
    },
    "head": {"type": "recurrent", "cell": "gru", "hidden": 16},
}


def _model():
    recipe = parse_config(Recipe, RECIPE, source="test")
    return split_model(recipe, ["a", "b"], build_model(recipe, num_classes=2).eval())


def _timing(
    seconds: dict[str, float], calls: list[str]
) -> Callable[[str, Callable[[], Any]], float]:
    def timing(name: str, run: Callable[[], Any]) -> float:
        run()
        calls.append(name)
        return seconds[name]

    return timing


def test_stream_probe_picks_the_fastest_and_caches_it(tmp_path: Path) -> None:
    model = _model()
    own = f"eager-{model.encoder.precision}"  # the encoder's own path
    calls: list[str] = []
    probe = ProbeSettings(
        timing=_timing({"onnx-fp32": 1.0, own: 5.0}, calls), cache=ChoiceCache(tmp_path)
    )
    engine = build_stream_engine(model, "auto", probe=probe)
    assert engine is not None and engine.kind == "onnx" and engine.chosen_by == "probe"
    assert set(calls) == {"onnx-fp32", own} and engine.trials is not None
    assert engine.describe()["probe"]["onnx-fp32"]["refused"] == ""
    # a second stream start on this CPU: the cached choice, nothing measured
    calls.clear()
    again = build_stream_engine(_model(), "auto", probe=probe)
    assert again is not None and again.kind == "onnx" and again.chosen_by == "cache"
    assert calls == []


def test_stream_probe_keeps_the_encoder_path_when_it_wins(tmp_path: Path) -> None:
    model = _model()
    own = f"eager-{model.encoder.precision}"
    probe = ProbeSettings(
        timing=_timing({"onnx-fp32": 5.0, own: 1.0}, []), cache=ChoiceCache(tmp_path)
    )
    assert build_stream_engine(model, "auto", probe=probe) is None
    # an explicit engine is never measured
    never = ProbeSettings(
        timing=lambda name, run: pytest.fail(f"{name} measured"),
        cache=ChoiceCache(tmp_path / "other"),
    )
    forced = build_stream_engine(model, "onnx", probe=never)
    assert forced is not None and forced.kind == "onnx" and forced.chosen_by == "explicit"
    assert build_stream_engine(model, "torch", probe=never) is None


def test_stream_probe_refuses_an_engine_off_fp32(tmp_path: Path, monkeypatch) -> None:
    real = engine_mod._ort_runner

    def broken(*args, **kwargs):
        runner = real(*args, **kwargs)
        call = runner.call
        runner.call = lambda x: [o * 1.01 for o in call(x)]
        return runner

    monkeypatch.setattr(engine_mod, "_ort_runner", broken)
    model = _model()
    own = f"eager-{model.encoder.precision}"
    calls: list[str] = []
    probe = ProbeSettings(
        timing=_timing({"onnx-fp32": 0.1, own: 5.0}, calls), cache=ChoiceCache(tmp_path)
    )
    assert build_stream_engine(model, "auto", probe=probe) is None  # fastest, but 1% off
    assert "onnx-fp32" not in calls
    # the refusal is measured again at the next start (an export problem may be gone)
    monkeypatch.setattr(engine_mod, "_ort_runner", real)
    engine = build_stream_engine(_model(), "auto", probe=probe)
    assert engine is not None and engine.kind == "onnx" and engine.chosen_by == "probe"


def test_compiled_stream_candidate_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    from harkit.features import extractor as extractor_module

    monkeypatch.setattr(extractor_module, "compile_network", lambda net, freezing=True: net)
    model = _model()
    compiled = f"compiled-{model.encoder.precision}"
    seconds = {"onnx-fp32": 5.0, compiled: 1.0, f"eager-{model.encoder.precision}": 5.0}
    calls: list[str] = []
    probe = ProbeSettings(timing=_timing(seconds, calls), cache=ChoiceCache(tmp_path))
    engine = build_stream_engine(model, "auto", probe=probe)
    assert engine is not None and compiled not in calls  # off by default
    probe = ProbeSettings(
        compile=True, timing=_timing(seconds, calls), cache=ChoiceCache(tmp_path / "c")
    )
    engine = build_stream_engine(_model(), "auto", probe=probe)
    assert engine is not None and engine.kind == compiled
