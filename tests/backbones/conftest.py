"""Backbone tests: keep torch to one thread, other test suites share the CPU."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No download can happen: an empty torch hub dir and a downloader that always fails."""

    def refuse(url: str, *args, **kwargs):
        raise urllib.error.URLError(f"network disabled in tests ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"
