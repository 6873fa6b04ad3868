"""Damaged stores: files that no longer match their manifest row, a corrupt manifest, config or
skip report, a store path that is a file, and manifests of older and newer schemas."""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest

from harkit.data.clips import SkippedVideo, SkipReport, collate_clips
from harkit.data.datasets import VideoIndex
from harkit.data.jobs import video_id
from harkit.data.sampling import SamplingConfig
from harkit.features import (
    MANIFEST_VERSION,
    DamagedFeatureError,
    FeatureDataset,
    FeatureStore,
    FeatureStoreError,
    extract_features,
    feature_stores_for,
    skip_report_path,
    store_config,
)
from tests.helpers.features import FOUR, R18

CONFIG = store_config(R18, SamplingConfig(num_frames=8))
DATA = np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32)


def _store(tmp_path: Path) -> FeatureStore:
    store = FeatureStore.at(tmp_path, CONFIG)
    store.put("a.mp4", DATA)
    return store


def test_rows_record_size_dtype_and_checksum(tmp_path: Path) -> None:
    store = _store(tmp_path)
    row = store.row("a.mp4")
    written = store.file_for("a.mp4").read_bytes()
    assert (row.nbytes, row.dtype, row.crc32) == (len(written), "float16", zlib.crc32(written))
    store.put_failed("a.mp4", "broken")
    assert (store.row("a.mp4").nbytes, store.row("a.mp4").dtype) == (-1, "")
    version = sqlite3.connect(store.path / "manifest.sqlite").execute("PRAGMA user_version")
    assert version.fetchone()[0] == MANIFEST_VERSION


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: f.write_bytes(b""), r"is empty \(0 bytes\), the manifest recorded 5248 \("),
        (lambda f: f.write_bytes(f.read_bytes()[:-7]), "truncated or overwritten"),
        (lambda f: f.unlink(), "is missing"),
        (lambda f: np.save(f, np.zeros((6, 512), np.float16)), "is 6272 bytes"),
    ],
    ids=["empty", "truncated", "missing", "other array"],
)
def test_damaged_file_is_named_on_every_read(tmp_path: Path, damage, reason: str) -> None:
    store = _store(tmp_path)
    file = store.file_for("a.mp4")
    damage(file)
    for read in (lambda: store.get("a.mp4"), lambda: store.get("a.mp4", mmap=True)):
        with pytest.raises(DamagedFeatureError, match=reason) as info:
            read()
        assert str(info.value).startswith(f"feature file {file} ")
        assert str(info.value).endswith("; `harkit extract` re-extracts it")
        assert "\n" not in str(info.value)
    assert list(store.damaged()) == ["a.mp4"] and store.damaged(["b.mp4"]) == {}
    assert len(store.verify()) == 1


def test_changed_bytes_fail_the_checksum(tmp_path: Path) -> None:
    store = _store(tmp_path)
    file = store.file_for("a.mp4")
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF  # same size, valid header: only the checksum sees it
    file.write_bytes(bytes(data))
    assert store.damaged() == {}  # the cheap check does not read the data
    with pytest.raises(DamagedFeatureError, match="fails its CRC-32 check"):
        store.get("a.mp4")
    assert "CRC-32" in store.verify()[0]


def test_training_reads_skip_and_report_a_damaged_file(
    tmp_path: Path, tiny_index: VideoIndex, tiny_root: Path
) -> None:
    store = FeatureStore.at(tmp_path, CONFIG)
    for item in tiny_index:
        store.put(video_id(item.path, tiny_root), DATA)
    bad = tiny_index[2]
    store.file_for(video_id(bad.path, tiny_root)).write_bytes(b"")  # the EOFError
    dataset = FeatureDataset(tiny_index, [store], video_root=tiny_root)
    batch = collate_clips([dataset[i] for i in range(len(tiny_index))])
    assert batch["video"].shape == (len(tiny_index) - 1, 5, 512)
    (skipped,) = batch["skipped"]
    assert isinstance(skipped, SkippedVideo) and skipped.path == str(bad.path)
    assert f"feature file {store.file_for(video_id(bad.path, tiny_root))} is empty (0 bytes)" in (
        skipped.reason
    )
    report = SkipReport(tmp_path / "skipped.json")
    report.record_batch(batch)
    assert json.loads((tmp_path / "skipped.json").read_text()) == {str(bad.path): skipped.reason}


def test_extract_re_extracts_damaged_files(
    tmp_path: Path, tiny_index: VideoIndex, caplog: pytest.LogCaptureFixture
) -> None:
    first = extract_features(tiny_index, [R18], tmp_path, FOUR, num_workers=0, progress=False)
    assert first.extracted == len(tiny_index)
    (location,) = feature_stores_for([R18], FOUR, None, tmp_path)
    store = location.open()
    ids = sorted(store.done_ids())
    before = store.get(ids[0]).copy()
    store.file_for(ids[0]).write_bytes(store.file_for(ids[0]).read_bytes()[:100])
    store.file_for(ids[1]).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="harkit.features.pipeline"):
        again = extract_features(tiny_index, [R18], tmp_path, FOUR, num_workers=0, progress=False)
    assert (again.repaired, again.extracted, again.existing) == (2, 2, len(tiny_index) - 2)
    messages = [r.getMessage() for r in caplog.records]
    assert f"feature file {store.file_for(ids[0])} is 100 bytes" in messages[0]
    assert messages[0].endswith(f": re-extracting {ids[0]}")
    assert store.verify() == []
    np.testing.assert_array_equal(store.get(ids[0]), before)
    third = extract_features(tiny_index, [R18], tmp_path, FOUR, num_workers=0, progress=False)
    assert (third.repaired, third.extracted) == (0, 0)


_OLD_SCHEMA = """
CREATE TABLE videos (
    video_id TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    num_steps INTEGER NOT NULL DEFAULT 0, dim INTEGER NOT NULL DEFAULT 0,
    file TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '', created REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX videos_path ON videos (path);
"""


def _old_store(tmp_path: Path) -> FeatureStore:
    """A store as the first manifest schema wrote it (no size, dtype or checksum)."""
    store = FeatureStore.at(tmp_path, CONFIG)
    store.close()
    (store.path / "manifest.sqlite").unlink()
    with sqlite3.connect(store.path / "manifest.sqlite") as db:
        db.executescript(_OLD_SCHEMA)
        for name, steps in (("a.mp4", 5), ("b.mp4", 3)):
            np.save(store.file_for(name), DATA[:steps].astype(np.float16))
            db.execute(
                "INSERT INTO videos VALUES (?, 'ok', ?, 512, ?, '', '', 0, 0)",
                (name, steps, f"features/{name}.npy"),
            )
        db.execute("INSERT INTO videos VALUES ('c.mp4', 'failed', 0, 0, '', 'bad', '', 0, 0)")
    return store


def test_old_manifest_is_upgraded_and_still_checked(tmp_path: Path) -> None:
    old = _old_store(tmp_path)
    store = FeatureStore(old.path)
    assert store.counts() == {"ok": 2, "failed": 1}
    assert store.row("a.mp4").nbytes == -1 and store.get("a.mp4").shape == (5, 512)
    with sqlite3.connect(store.path / "manifest.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == MANIFEST_VERSION
    # no recorded size: the header says how long the file must be
    file = store.file_for("b.mp4")
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(DamagedFeatureError, match=r"is \d+ bytes, its header needs \d+"):
        store.get("b.mp4")
    assert list(store.damaged()) == ["b.mp4"]
    store.put("b.mp4", DATA)  # new rows get the new fields
    assert store.row("b.mp4").nbytes > 0 and store.verify() == []


def test_newer_manifest_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with sqlite3.connect(store.path / "manifest.sqlite") as db:
        db.execute(f"PRAGMA user_version = {MANIFEST_VERSION + 1}")
    with pytest.raises(FeatureStoreError) as info:
        FeatureStore(store.path)
    assert str(info.value) == (
        f"{store.path / 'manifest.sqlite'} was written by a newer harkit (manifest schema "
        f"{MANIFEST_VERSION + 1}, this one reads up to {MANIFEST_VERSION}); upgrade harkit, or "
        f"delete the folder {store.path} to re-extract"
    )


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda f: f.write_bytes(b"this is not sqlite" * 100), "file is not a database"),
        (lambda f: f.write_bytes(f.read_bytes()[:2000]), "database disk image is malformed"),
    ],
    ids=["garbage", "truncated"],
)
def test_corrupt_manifest_is_one_line(tmp_path: Path, damage, detail: str) -> None:
    store = _store(tmp_path)
    for i in range(40):  # enough rows for a manifest of several pages
        store.put(f"v{i}.mp4", DATA[:1], path=f"/videos/{'x' * 200}/{i}.mp4")
    store.close()
    for extra in ("-wal", "-shm"):
        Path(f"{store.path / 'manifest.sqlite'}{extra}").unlink(missing_ok=True)
    damage(store.path / "manifest.sqlite")
    with pytest.raises(FeatureStoreError) as info:
        FeatureStore(store.path).counts()
    assert str(info.value) == (
        f"{store.path / 'manifest.sqlite'} is not a readable SQLite database ({detail}); "
        f"delete the folder {store.path} to re-extract"
    )


def test_corrupt_manifest_via_cli(tmp_path: Path, tiny_root: Path, capsys) -> None:
    from harkit.cli import main as cli_main

    store_root = tmp_path / "cache"
    (location,) = feature_stores_for(
        [R18], FOUR.model_copy(update={"num_frames": 2}), None, store_root
    )
    store = location.open()
    store.close()
    (store.path / "manifest.sqlite").write_bytes(b"\0garbage" * 512)
    argv = [
        "extract",
        str(tiny_root),
        "--store",
        str(store_root),
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--sampling",
        "num_frames=2",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"harkit: error: {store.path / 'manifest.sqlite'} is not a readable SQLite database "
        f"(file is not a database); delete the folder {store.path} to re-extract\n"
    )


def test_corrupt_config_is_one_line(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store.path / "config.json").write_text('{"backbone": "resnet18"}')  # fields missing
    with pytest.raises(FeatureStoreError) as info:
        FeatureStore(store.path)
    text = str(info.value)
    assert text.startswith(f"{store.path / 'config.json'} is not a readable store config (")
    assert text.endswith(f"); delete the folder {store.path} to re-extract")
    assert "\n" not in text


def test_store_path_that_is_a_file(tmp_path: Path, tiny_index: VideoIndex) -> None:
    (tmp_path / "cache").write_text("oops")
    with pytest.raises(FeatureStoreError) as info:
        extract_features(tiny_index, [R18], tmp_path / "cache", FOUR, progress=False)
    assert str(info.value) == (
        f"{tmp_path / 'cache'} is a file, not a folder; a feature store needs a folder there "
        "(move the file away or choose another --store)"
    )
    with pytest.raises(FeatureStoreError, match=r"cache is a file, not a folder"):
        FeatureStore.at(tmp_path / "cache", CONFIG)
    with pytest.raises(FeatureStoreError, match=r"cache is a file, not a folder"):
        FeatureStore(tmp_path / "cache")


def test_corrupt_skip_report_is_rebuilt_from_the_manifest(
    tmp_path: Path, tiny_index: VideoIndex, tiny_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (location,) = feature_stores_for([R18], FOUR, None, tmp_path)
    store = location.open()
    for item in list(tiny_index)[1:]:
        store.put(video_id(item.path, tiny_root), DATA)
    store.put_failed(video_id(tiny_index[0].path, tiny_root), "no frames")
    report = skip_report_path(tmp_path)
    report.write_text('{"truncated": ')
    with caplog.at_level(logging.WARNING):
        done = extract_features(tiny_index, [R18], tmp_path, FOUR, progress=False)
    assert done.existing == len(tiny_index)  # nothing to extract, the report is mended anyway
    assert json.loads(report.read_text()) == {str(tiny_index[0].path): "no frames"}
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert message.startswith(f"{report} was unreadable (Expecting value")
    assert message.endswith("; rebuilt it with 1 entries")
