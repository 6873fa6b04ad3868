"""One precision rule for every fast path, and HARKIT_PRECISION forcing it either way."""

from __future__ import annotations

import pytest
import torch

from harkit.errors import HarkitError
from harkit.features import FeatureExtractor
from harkit.precision import PRECISION_ENV, bf16_fast, resolve_precision
from tests.helpers.features import R18, SMALL

CPU = torch.device("cpu")


def test_auto_follows_the_hardware_without_the_variable(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert resolve_precision("auto", CPU) == ("bf16" if bf16_fast(CPU) else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"


@pytest.mark.parametrize(
    ("native", "amx", "expected"),
    [(True, True, "bf16"), (True, False, "fp32"), (False, False, "fp32")],
)
def test_auto_runs_bf16_only_where_amx_makes_it_faster(monkeypatch, native, amx, expected):
    # AVX512-BF16 without AMX: fp32 on onnxruntime measured 1.6-1.9x faster than bf16
    import harkit.precision as precision

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    monkeypatch.setattr(precision, "bf16_native", lambda device: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", CPU) == expected


@pytest.mark.parametrize("forced", ["fp32", "bf16", "FP32 "])
def test_variable_forces_auto_but_not_an_explicit_precision(monkeypatch, forced):
    monkeypatch.setenv(PRECISION_ENV, forced)
    assert resolve_precision("auto", CPU) == forced.strip().lower()
    assert resolve_precision("fp32", CPU) == "fp32"  # explicit wins: fp32 stays the reference


def test_extractor_and_recognizer_obey_the_variable(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    extractor = FeatureExtractor([R18], SMALL)
    # bf16 graphs run on PyTorch: the ONNX engine is fp32 only
    assert (extractor.precision, extractor.engine) == ("bf16", "torch")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert FeatureExtractor([R18], SMALL).precision == "fp32"


@pytest.mark.parametrize(
    ("env", "precision", "message"),
    [
        ("fp64", "auto", "HARKIT_PRECISION='fp64' is not a precision"),
        ("", "half", "unknown precision 'half'"),
        ("", "fp16", "'fp16' needs a GPU"),
    ],
)
def test_bad_precision_is_one_clear_line(monkeypatch, env, precision, message):
    monkeypatch.setenv(PRECISION_ENV, env)
    with pytest.raises(HarkitError, match=message) as err:
        resolve_precision(precision, CPU)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
