"""Fixtures of the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.frames import claim_frames


@pytest.fixture
def lying_avi(make_video: Callable[..., Path]) -> Callable[..., Path]:
    """``lying_avi(num_frames, claimed)``: a real 32x32 H.264 AVI of ``num_frames`` frames whose
    header (avih dwTotalFrames and strh dwLength) claims ``claimed`` frames."""

    def make(num_frames: int = 12, claimed: int = 10**9, name: str = "liar.avi") -> Path:
        path = make_video(name, num_frames=num_frames, height=32, width=32)
        claim_frames(path, claimed)
        return path

    return make
