"""A manifest row counts as done only for the file it was extracted from (size + mtime_ns)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harkit.data.clips import SkippedVideo
from harkit.data.datasets import DatasetConfig, VideoIndex, load_index
from harkit.features import FeatureDataset, FeatureStore, extract_features, feature_stores_for
from tests.helpers.features import FOUR, R18, SMALL

KW = {"precision": "fp32", "engine": "torch", "num_workers": 0, "device": "cpu", "progress": False}


def _extract(index: VideoIndex, root: Path, store_root: Path, **kw):
    return extract_features(index, [R18], store_root, FOUR, SMALL, video_root=root, **KW, **kw)


def _store(store_root: Path) -> FeatureStore:
    (location,) = feature_stores_for([R18], FOUR, SMALL, store_root)
    return location.open()


def _videos(root: Path) -> list[Path]:
    return sorted(root.rglob("*.mp4"))


def _other_dataset(src: Path, dst: Path) -> Path:
    """Same relative paths as ``src``, each holding another video's content (rotated)."""
    shutil.copytree(src, dst)
    videos = _videos(src)
    for here, there in zip(videos, videos[1:] + videos[:1], strict=True):
        shutil.copyfile(there, dst / here.relative_to(src))
    return dst


@pytest.fixture
def two_datasets(tiny_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "first"
    shutil.copytree(tiny_root, first)
    return first, _other_dataset(tiny_root, tmp_path / "second")


def test_same_ids_other_files_are_re_extracted(
    two_datasets: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = two_datasets
    index_a, index_b = (load_index(DatasetConfig(root=r)) for r in (first, second))
    store_root = tmp_path / "store"
    assert _extract(index_a, first, store_root).extracted == len(index_a)

    # the reader refuses rows of another file before extraction refreshes them
    stale = FeatureDataset(index_b, [_store(store_root)], video_root=second)
    assert all(isinstance(item, SkippedVideo) for item in stale)
    assert "another file for this id" in stale[0].reason

    with caplog.at_level(logging.WARNING, logger="harkit.features.pipeline"):
        report = _extract(index_b, second, store_root)
    assert (report.extracted, report.existing, report.changed) == (len(index_b), 0, len(index_b))
    assert f"{len(index_b)} video(s) changed since extraction" in caplog.text

    fresh_root = tmp_path / "fresh"
    _extract(index_b, second, fresh_root)
    shared, fresh = _store(store_root), _store(fresh_root)
    for row in fresh.rows():
        np.testing.assert_array_equal(shared.get(row.video_id), fresh.get(row.video_id))
    dataset = FeatureDataset(index_b, [shared], video_root=second)
    assert not any(isinstance(item, SkippedVideo) for item in dataset)

    # unchanged re-run: nothing to do
    again = _extract(index_b, second, store_root)
    assert (again.extracted, again.existing, again.changed) == (0, len(index_b), 0)

    # a touched file (mtime changed, content not) is redone, alone
    touched = _videos(second)[0]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    redo = _extract(index_b, second, store_root)
    assert (redo.extracted, redo.existing, redo.changed) == (1, len(index_b) - 1, 1)
    row = shared.row(touched.relative_to(second).as_posix())
    assert (row.source_size, row.source_mtime_ns) == (st.st_size, st.st_mtime_ns + 5_000_000_000)


def test_failed_row_is_retried_when_the_file_changes(tiny_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    shutil.copytree(tiny_root, root)
    index = load_index(DatasetConfig(root=root))
    broken = _videos(root)[0]
    good = broken.read_bytes()
    broken.write_bytes(b"not a video")
    first = _extract(index, root, tmp_path / "store")
    assert first.failed == 1
    assert _extract(index, root, tmp_path / "store").extracted == 0  # same file: not retried
    broken.write_bytes(good)  # fixed: another size and mtime
    fixed = _extract(index, root, tmp_path / "store")
    assert (fixed.extracted, fixed.failed, fixed.changed) == (1, 0, 1)
    assert _store(tmp_path / "store").counts() == {"ok": len(index), "failed": 0}


def test_rows_without_source_info_still_count(tiny_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    shutil.copytree(tiny_root, root)
    index = load_index(DatasetConfig(root=root))
    store_root = tmp_path / "store"
    _extract(index, root, store_root)
    path = _store(store_root).path
    with sqlite3.connect(path / "manifest.sqlite") as db:  # as a schema-2 manifest left them
        db.execute("UPDATE videos SET source_size = -1, source_mtime_ns = -1")
    report = _extract(index, root, store_root)
    assert (report.extracted, report.changed) == (0, 0)
    dataset = FeatureDataset(index, [FeatureStore(path)], video_root=root)
    assert not any(isinstance(item, SkippedVideo) for item in dataset)
