"""A tiny folder dataset of moving textures (plus one broken file) for the flow tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.data.datasets import VideoIndex, folder_index
from harkit.synth import write_video
from tests.helpers.flow import MOTION, moving_frames


@pytest.fixture(scope="session")
def video_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/<left|right>/c<k>.mp4``: 3 clips per class, 8 frames of 48x64 moving 2 px/frame."""
    root = tmp_path_factory.mktemp("videos")
    for label, dx in MOTION.items():
        for k in range(3):
            frames = moving_frames(8 + k, 48, 64, dx)
            write_video(root / label / f"c{k}.mp4", frames, fps=10)
    return root


@pytest.fixture
def index(video_tree: Path) -> VideoIndex:
    return folder_index(video_tree)


@pytest.fixture
def broken_index(video_tree: Path, tmp_path: Path) -> VideoIndex:
    """The tree's videos plus a zero-byte ``right/broken.mp4`` (in a copy of the tree)."""
    root = tmp_path / "videos"
    for src in video_tree.rglob("*.mp4"):
        dst = root / src.relative_to(video_tree)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    (root / "right" / "broken.mp4").write_bytes(b"")
    return folder_index(root)
