"""The engine chosen per CPU by measurement (harkit.engine_choice): the probe with injected
timings, its refusal of candidates off fp32, the cache, and the store's record. No timing
is asserted: every speed here is injected."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from harkit import engine_choice
from harkit.data.datasets import VideoIndex
from harkit.engine_choice import (
    Candidate,
    ChoiceCache,
    ProbeSettings,
    Trial,
    choice_key,
    measure,
    pick,
    read_engine_records,
)
from harkit.features import FeatureExtractor, extract_features, feature_stores_for
from harkit.features import engines as engines_module
from harkit.features import extractor as extractor_module
from harkit.features.engines import probe_settings
from harkit.precision import PRECISION_ENV, probe_precisions
from tests.helpers.features import FOUR, R18, SMALL
from tests.helpers.frames import pattern_frames
from tests.helpers.tolerances import FEATURE_RTOL

CPU = torch.device("cpu")
FRAMES = pattern_frames(4, 72, 96)


def fake_timing(seconds: dict[str, float], calls: list[str] | None = None):
    """A ``timing(name, run)`` that runs the candidate and reports ``seconds[name]``."""

    def timing(name: str, run: Callable[[], Any]) -> float:
        run()
        if calls is not None:
            calls.append(name)
        return seconds[name]

    return timing


def never(name: str, run: Callable[[], Any]) -> float:
    raise AssertionError(f"{name} was measured")


def extractor(cache: Path, timing=never, compile: bool = False, **kw: Any) -> FeatureExtractor:
    settings = ProbeSettings(compile=compile, timing=timing, cache=ChoiceCache(cache))
    kw.setdefault("precision", "fp32")  # candidates onnx-fp32, [compiled-fp32], eager-fp32
    return FeatureExtractor([R18], SMALL, chunk_size=4, probe=settings, **kw)


def reference() -> torch.Tensor:
    ref = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch")
    return ref(FRAMES)[ref.keys[0]]


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm(dim=1) / want.norm(dim=1)).max().item()


class _Wrapped(torch.nn.Module):
    """A stand-in for a compiled graph (no inductor in unit tests): ``scale`` 1 is right."""

    def __init__(self, net: torch.nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.scale


# -- the probe ------------------------------------------------------------------------------


def test_measure_picks_the_fastest_and_refuses_wrong_features() -> None:
    want = {"pooled": torch.ones(4, 8)}

    def cand(name: str, scale: float = 1.0, precision: str = "fp32") -> Candidate:
        return Candidate(name, precision, lambda: lambda: {"pooled": want["pooled"] * scale})

    def broken() -> Callable[[], dict]:
        raise RuntimeError("export failed")

    cands = [
        cand("a"),
        cand("b"),
        cand("wrong", 1.01),
        cand("bf", 1.01, "bf16"),
        Candidate("broken", "fp32", broken),
    ]
    seconds = {"a": 2.0, "b": 1.0, "wrong": 0.1, "bf": 0.5, "broken": 0.01}
    calls: list[str] = []
    trials, outputs = measure(cands, want, 4, rounds=3, timing=fake_timing(seconds, calls))
    # 1% off is out of fp32's 1e-4 but within bf16's 3e-2; failures and wrong ones are untimed
    assert "features off fp32" in trials["wrong"].refused and not trials["wrong"].ok
    assert (
        trials["broken"].refused.startswith("failed: RuntimeError")
        and trials["broken"].error is None
    )
    assert trials["bf"].ok and trials["bf"].error == pytest.approx(0.01, rel=1e-3)
    assert sorted(calls) == sorted(["a", "b", "bf"] * 3) and set(outputs) == {"a", "b", "bf"}
    assert calls[:3] != calls[3:6]  # the order rotates between rounds
    assert trials["b"].seconds == 1.0 and trials["b"].items_per_s == 4.0
    assert pick(trials, ["a", "b", "wrong", "broken"]) == "b"
    assert pick(trials, ["a", "b", "bf"]) == "bf"
    assert pick(trials, ["wrong", "broken"]) is None
    # the usual choice stays unless another is clearly faster (noise must not flip it)
    close = {"a": Trial("a", seconds=1.0), "b": Trial("b", seconds=0.95)}
    assert pick(close, ["a", "b"], prefer="a") == "a"
    assert pick(close, ["a", "b"], prefer="a", margin=0.01) == "b"
    assert pick(trials, ["a", "b"], prefer="a") == "b"


@pytest.mark.parametrize("fastest", ["onnx-fp32", "eager-fp32"])
def test_extractor_probe_picks_the_fastest(tmp_path: Path, fastest: str) -> None:
    seconds = {"onnx-fp32": 3.0, "eager-fp32": 3.0, fastest: 1.0}
    calls: list[str] = []
    fast = extractor(tmp_path / "cache", fake_timing(seconds, calls))
    assert fast.plans == [None]  # decided on the first batch
    assert fast.candidates(0) == ["onnx-fp32", "eager-fp32"]
    got = fast(FRAMES)[fast.keys[0]]
    plan = fast.plans[0]
    assert plan is not None and (plan.name, plan.chosen_by) == (fastest, "probe")
    assert sorted(set(calls)) == ["eager-fp32", "onnx-fp32"]
    assert fast.uses_onnx(0) == (fastest == "onnx-fp32")
    assert max_rel_err(got, reference()) <= FEATURE_RTOL["fp32"]
    described = fast.describe()
    assert described["engines"][fast.keys[0]]["engine"] == fastest  # type: ignore[index]
    assert described["engine"] == ("onnx" if fastest == "onnx-fp32" else "torch")
    # later batches run the chosen engine, unmeasured
    calls.clear()
    assert max_rel_err(fast(FRAMES)[fast.keys[0]], got) <= FEATURE_RTOL["fp32"]
    assert calls == []


def test_probe_refuses_a_compiled_graph_off_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A miscompile (frozen Inception-ResNet-V2 in torch 2.14) is refused however fast."""
    monkeypatch.setattr(
        extractor_module, "compile_network", lambda net, freezing=True: _Wrapped(net, 1.2)
    )
    seconds = {"onnx-fp32": 3.0, "compiled-fp32": 0.1, "eager-fp32": 2.0}
    fast = extractor(tmp_path / "cache", fake_timing(seconds), compile=True)
    assert fast.candidates(0) == ["onnx-fp32", "compiled-fp32", "eager-fp32"]
    with caplog.at_level("WARNING"):
        got = fast(FRAMES)[fast.keys[0]]
    plan = fast.plans[0]
    assert plan is not None and plan.name == "eager-fp32" and plan.trials is not None
    assert "off fp32 by 0.2" in plan.trials["compiled-fp32"].refused
    assert "compiled-fp32 refused" in caplog.text
    assert not isinstance(fast.networks[0], _Wrapped)
    assert max_rel_err(got, reference()) <= FEATURE_RTOL["fp32"]
    # the refusal is cached: the next job neither compiles nor measures
    monkeypatch.setattr(
        extractor_module, "compile_network", lambda *a, **k: pytest.fail("compiled")
    )
    again = extractor(tmp_path / "cache", never, compile=True)
    again(FRAMES)
    assert again.plans[0] is not None and again.plans[0].name == "eager-fp32"


def test_a_right_compiled_graph_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[_Wrapped] = []

    def compile_network(net: torch.nn.Module, freezing: bool = True) -> torch.nn.Module:
        built.append(_Wrapped(net))
        return built[-1]

    monkeypatch.setattr(extractor_module, "compile_network", compile_network)
    seconds = {"onnx-fp32": 3.0, "compiled-fp32": 1.0, "eager-fp32": 2.0}
    fast = extractor(tmp_path / "cache", fake_timing(seconds), compile=True)
    frames = pattern_frames(6, 72, 96)  # 4, then 2 padded to the compiled batch of 4
    got = fast(frames)[fast.keys[0]]
    assert fast.plans[0] is not None and fast.plans[0].name == "compiled-fp32"
    assert fast.networks[0] is built[0] and len(built) == 1  # the probe's graph, not a new one
    ref = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch")
    assert got.shape == (6, 512)
    assert max_rel_err(got, ref(frames)[ref.keys[0]]) <= FEATURE_RTOL["fp32"]
    assert fast.describe()["compile"] is True


def test_a_compiled_choice_runs_one_small_batch_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled candidates run 8 frames a call (one graph shape; the last call padded)."""
    sizes: list[int] = []

    class Recording(_Wrapped):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(len(x))
            return super().forward(x)

    monkeypatch.setattr(
        extractor_module, "compile_network", lambda net, freezing=True: Recording(net)
    )
    settings = ProbeSettings(
        compile=True,
        cache=ChoiceCache(tmp_path),
        timing=fake_timing({"onnx-fp32": 3.0, "compiled-fp32": 1.0, "eager-fp32": 2.0}),
    )
    fast = FeatureExtractor([R18], SMALL, precision="fp32", chunk_size=16, probe=settings)
    frames = pattern_frames(20, 72, 96)  # the probe's batch of 16, then 4 padded to 8
    got = fast(frames)[fast.keys[0]]
    plan = fast.plans[0]
    assert plan is not None and (plan.name, plan.batch) == ("compiled-fp32", 8)
    assert set(sizes) == {8} and got.shape == (20, 512)
    ref = FeatureExtractor([R18], SMALL, precision="fp32", engine="torch")
    assert max_rel_err(got, ref(frames)[ref.keys[0]]) <= FEATURE_RTOL["fp32"]


# -- precision candidates ---------------------------------------------------------------------


def test_bf16_is_a_candidate_only_where_native_and_in_tolerance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    import harkit.precision as precision_module

    monkeypatch.setattr(precision_module, "bf16_native", lambda device: True)
    assert probe_precisions("auto", CPU) == ["fp32", "bf16"]
    assert probe_precisions("auto", CPU, low_precision_ok=False) == ["fp32"]  # Lite0
    assert probe_precisions("fp32", CPU) == ["fp32"] and probe_precisions("bf16", CPU) == ["bf16"]
    monkeypatch.setenv(PRECISION_ENV, "fp32")  # forces what 'auto' means
    assert probe_precisions("auto", CPU) == ["fp32"]
    monkeypatch.delenv(PRECISION_ENV)
    monkeypatch.setattr(precision_module, "bf16_native", lambda device: False)  # emulated
    assert probe_precisions("auto", CPU) == ["fp32"]


# -- the cache ----------------------------------------------------------------------------------


def test_cache_round_trip_skips_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ChoiceCache(tmp_path)
    key = choice_key("extract", {"backbone": "resnet18"}, (4, 3, 64, 64))
    assert cache.load(key) is None
    trials = {
        "eager-fp32": Trial("eager-fp32", seconds=0.5, items_per_s=8.0, error=0.0, tolerance=1e-4),
        "onnx-fp32": Trial("onnx-fp32", refused="features off fp32 by 0.1"),
    }
    path = cache.save(key, trials, "eager-fp32")
    assert path.parent == tmp_path and not list(tmp_path.glob(".*"))  # atomic: no temp left
    assert cache.load(key) == trials
    assert json.loads(path.read_text())["chosen"] == "eager-fp32"
    # an extractor: measured once, then the cached choice, with no timing at all
    seconds = {"onnx-fp32": 1.0, "eager-fp32": 3.0}
    first = extractor(tmp_path / "x", fake_timing(seconds))
    first(FRAMES)
    second = extractor(tmp_path / "x", never)
    got = second(FRAMES)[second.keys[0]]
    plan = second.plans[0]
    assert plan is not None and (plan.name, plan.chosen_by) == ("onnx-fp32", "cache")
    assert max_rel_err(got, reference()) <= FEATURE_RTOL["fp32"]
    # compiled candidates were not measured: a job that may compile measures again
    calls: list[str] = []
    monkeypatch.setattr(
        extractor_module, "compile_network", lambda net, freezing=True: _Wrapped(net)
    )
    timing = fake_timing({**seconds, "compiled-fp32": 2.0}, calls)
    third = extractor(tmp_path / "x", timing, compile=True)
    third(FRAMES)
    assert "compiled-fp32" in calls and third.plans[0].chosen_by == "probe"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"[1, 2]", b'{"key": {}, "trials": {"x": {"candidate": "x"}}}', None],
)
def test_damaged_cache_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: bytes | None
) -> None:
    cache = ChoiceCache(tmp_path)
    key = choice_key("extract", {"backbone": "resnet18"}, (4, 3, 64, 64))
    path = cache.save(key, {"eager-fp32": Trial("eager-fp32", seconds=1.0)}, "eager-fp32")
    record = json.loads(path.read_text())
    if damage is None:  # a trial with a negative time
        record["trials"]["eager-fp32"]["seconds"] = -1
        damage = json.dumps(record).encode()
    path.write_bytes(damage)
    with caplog.at_level("WARNING"):
        assert cache.load(key) is None
    assert "ignoring damaged engine-choice cache" in caplog.text
    # an extractor measures again and replaces the file
    fast = FeatureExtractor(
        [R18],
        SMALL,
        precision="fp32",
        chunk_size=4,
        probe=ProbeSettings(timing=fake_timing({"onnx-fp32": 2.0, "eager-fp32": 1.0}), cache=cache),
    )
    ekey = fast.choice_key(0, fast.preprocessor(FRAMES)[fast.groups[0].prep_key])
    cache.path(ekey).parent.mkdir(parents=True, exist_ok=True)
    cache.path(ekey).write_bytes(damage)
    fast(FRAMES)
    assert fast.plans[0] is not None and fast.plans[0].chosen_by == "probe"
    assert cache.load(ekey) is not None


def _writer(folder: str, rounds: int) -> None:
    cache = ChoiceCache(folder)
    key = choice_key("extract", {"backbone": "resnet18"}, (4, 3, 64, 64))
    for i in range(rounds):
        cache.save(key, {"eager-fp32": Trial("eager-fp32", seconds=1.0 + i)}, "eager-fp32")


def test_cache_is_safe_to_share_between_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes write the same key while this one reads it: every read is whole."""
    _writer(str(tmp_path), 1)
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_writer, args=(str(tmp_path), 150)) for _ in range(2)]
    for proc in procs:
        proc.start()
    cache = ChoiceCache(tmp_path)
    key = choice_key("extract", {"backbone": "resnet18"}, (4, 3, 64, 64))
    reads = 0
    with caplog.at_level("WARNING"):
        while any(p.is_alive() for p in procs) or reads < 20:
            assert cache.load(key) is not None
            reads += 1
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    assert "damaged" not in caplog.text
    assert not list(tmp_path.glob(".*"))


def test_key_changes_with_cpu_flags_isa_backbone_and_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def key(**kw: Any) -> str:
        args = {"network": {"backbone": "resnet18"}, "shape": (8, 3, 224, 224), **kw}
        return engine_choice.key_digest(choice_key("extract", args["network"], args["shape"]))

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(engine_choice, "_cpuinfo", lambda: ("Xeon", ["avx2", "avx512f"]))
    base = key()
    assert key() == base  # stable
    assert key(network={"backbone": "googlenet"}) != base
    assert key(shape=(32, 3, 224, 224)) != base and key(shape=(8, 3, 299, 299)) != base
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an emulated AVX2 CPU is another CPU
    assert key() != base
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(engine_choice, "_cpuinfo", lambda: ("Xeon", ["avx2"]))
    assert key() != base
    monkeypatch.setattr(engine_choice, "_cpuinfo", lambda: ("Epyc", ["avx2", "avx512f"]))
    assert key() != base
    monkeypatch.setattr(engine_choice, "_cpuinfo", lambda: ("Xeon", ["avx2", "avx512f"]))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert key() != base
    finally:
        torch.set_num_threads(threads)
    assert key() == base


# -- explicit choices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "compile", "want"),
    [("onnx", False, "onnx-fp32"), ("torch", False, "eager-fp32"), ("auto", True, "compiled-fp32")],
)
def test_an_explicit_engine_bypasses_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, compile: bool, want: str
) -> None:
    monkeypatch.setattr(
        extractor_module, "compile_network", lambda net, freezing=True: _Wrapped(net)
    )
    settings = ProbeSettings(compile=True, timing=never, cache=ChoiceCache(tmp_path))
    fast = FeatureExtractor(
        [R18],
        SMALL,
        precision="fp32",
        engine=engine,  # type: ignore[arg-type]
        compile=compile,
        chunk_size=4,
        probe=settings,
    )
    assert fast.probe is None
    fast(FRAMES)
    plan = fast.plans[0]
    assert plan is not None and plan.name == want
    assert plan.chosen_by == ("explicit" if engine != "auto" else "rule")
    assert not list(tmp_path.glob("*.json"))  # nothing measured, nothing cached
    # the job-level rule: only engine='auto' on a CPU without compile=True measures
    if engine != "auto":
        assert probe_settings(10_000, CPU, engine) is None  # type: ignore[arg-type]
    assert probe_settings(10_000, CPU, "auto", compile=True) is None
    assert probe_settings(10_000, torch.device("cuda"), "auto") is None


def test_job_size_decides_what_is_measured() -> None:
    small = probe_settings(engines_module.PROBE_MIN_VIDEOS - 1, CPU)
    assert small is not None and not small.measure and not small.compile  # cached choice only
    mid = probe_settings(engines_module.PROBE_MIN_VIDEOS, CPU)
    assert mid is not None and mid.measure and not mid.compile
    big = probe_settings(engines_module.COMPILE_MIN_VIDEOS, CPU, compile=None)
    assert big is not None and big.measure
    no_compile = probe_settings(engines_module.COMPILE_MIN_VIDEOS, CPU, compile=False)
    assert no_compile is not None and not no_compile.compile


# -- the store's record ---------------------------------------------------------------------------


def test_store_records_the_engine(
    tiny_index: VideoIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engines_module, "PROBE_MIN_VIDEOS", 1)  # measure on this tiny job
    options = dict(dtype="float32", precision="fp32", batch_size=4, num_workers=0, progress=False)
    report = extract_features(tiny_index, [R18], tmp_path / "a", FOUR, SMALL, **options)  # type: ignore[arg-type]
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path / "a", dtype="float32")
    (run,) = read_engine_records(location.open().path)
    assert run["engine"] in ("onnx-fp32", "eager-fp32") and run["chosen_by"] == "probe"
    assert run["videos"] == report.extracted == 6 and run["steps"] == 24
    assert run["started"] <= run["finished"] and run["batch_size"] == 4
    assert set(run["probe"]) == {"onnx-fp32", "eager-fp32"}
    engines = report.extractor["engines"]
    assert engines[FeatureExtractor([R18], SMALL).keys[0]]["engine"] == run["engine"]  # type: ignore[index]
    # another job on this CPU takes the cached choice, and says so
    extract_features(tiny_index, [R18], tmp_path / "b", FOUR, SMALL, **options)  # type: ignore[arg-type]
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path / "b", dtype="float32")
    (again,) = read_engine_records(location.open().path)
    assert (again["engine"], again["chosen_by"]) == (run["engine"], "cache")
    # an explicit engine is recorded as such, beside the earlier run
    # nothing left to extract: no new run
    extract_features(tiny_index, [R18], tmp_path / "b", FOUR, SMALL, engine="torch", **options)  # type: ignore[arg-type]
    assert len(read_engine_records(location.open().path)) == 1
    extract_features(tiny_index, [R18], tmp_path / "c", FOUR, SMALL, engine="torch", **options)  # type: ignore[arg-type]
    (location,) = feature_stores_for([R18], FOUR, SMALL, tmp_path / "c", dtype="float32")
    (forced,) = read_engine_records(location.open().path)
    assert (forced["engine"], forced["chosen_by"]) == ("eager-fp32", "explicit")


def test_damaged_engine_record_is_rewritten(tmp_path: Path, caplog) -> None:
    (tmp_path / "engines.json").write_text("{oops")
    with caplog.at_level("WARNING"):
        assert read_engine_records(tmp_path) == []
        engine_choice.record_engine(tmp_path, {"run": "1", "started": 1.0, "engine": "x"})
    assert "damaged engine record" in caplog.text
    engine_choice.record_engine(tmp_path, {"run": "1", "started": 1.0, "engine": "y"})  # update
    engine_choice.record_engine(tmp_path, {"run": "2", "started": 2.0, "engine": "z"}, 1, 2)
    assert [r["engine"] for r in read_engine_records(tmp_path)] == ["y", "z"]
    assert (tmp_path / "engines-rank1-of-2.json").is_file()
