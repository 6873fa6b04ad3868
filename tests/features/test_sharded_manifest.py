"""One manifest shard per rank: ranks never open each other's shard, readers see one store.

The multi-node promise (nodes that share only a file system fill one store) needs every
manifest file to have one writer and no SQLite WAL (whose shared memory works on one host
only); see :mod:`harkit.features.store`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from harkit.data.clips import SkippedVideo
from harkit.data.datasets import VideoIndex
from harkit.data.sampling import SamplingConfig
from harkit.features import FeatureDataset, FeatureStore, feature_stores_for, store_config
from harkit.features import store as store_module
from harkit.features.manifest import MANIFEST_VERSION
from harkit.models.recipe import FeatureSource
from tests.helpers.features import R18

REPO = Path(__file__).resolve().parents[2]
TINY = FeatureSource(backbone="tiny_image", weights="none")
FOUR = SamplingConfig(strategy="uniform", num_frames=4)
CONFIG = store_config(R18, SamplingConfig(num_frames=8))
DATA = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)

# Every manifest file a rank's process hands to SQLite or opens itself, logged by an audit hook.
AUDITED_CLI = """
import os, sys
log = open(os.environ["HARKIT_TEST_OPENED"], "a")
def hook(event, args):
    if event == "sqlite3.connect":
        log.write(f"connect {args[0]}\\n")
    elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        if ".sqlite" in os.path.basename(os.fsdecode(args[0])):
            log.write(f"open {os.fsdecode(args[0])}\\n")
    else:
        return
    log.flush()
sys.addaudithook(hook)
from harkit.cli import main as cli_main
sys.exit(cli_main.main(sys.argv[1:]))
"""


def _rank_env(rank: int, world_size: int, opened: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "HARKIT_TEST_OPENED": str(opened),
    }
    for var in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "LOCAL_RANK"):
        env.pop(var, None)
    return env


def _opened_manifests(log: Path) -> set[str]:
    """File names of the manifests a process connected to or opened."""
    names = set()
    for line in log.read_text().splitlines():
        target = line.split(" ", 1)[1]
        if target.startswith("file:"):  # an SQLite URI
            target = unquote(urlparse(target).path)
        names.add(os.path.basename(target))
    return names


def _extract_as_ranks(
    tmp_path: Path, root: Path, store_root: Path, ranks: list[int], world_size: int, tag: str
) -> list[subprocess.CompletedProcess]:
    script = tmp_path / "audited_cli.py"
    script.write_text(textwrap.dedent(AUDITED_CLI))
    procs = []
    for rank in ranks:  # separate processes at once, as on separate nodes
        cmd = [
            sys.executable,
            str(script),
            "extract",
            str(root),
            "--store",
            str(store_root),
            "--backbone",
            "tiny_image",
            "--weights",
            "none",
            "--engine",
            "torch",
            "--sampling",
            "strategy=uniform",
            "num_frames=4",
            "--workers",
            "0",
            "--no-progress",
        ]
        env = _rank_env(rank, world_size, tmp_path / f"opened-{tag}-rank{rank}.txt")
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.slow
def test_ranks_open_only_their_own_shard_and_a_reader_sees_every_video(
    tmp_path: Path, tiny_root: Path, tiny_index: VideoIndex
) -> None:
    store_root = tmp_path / "store"
    runs = _extract_as_ranks(tmp_path, tiny_root, store_root, [0, 1], 2, "first")
    assert "rank 0/2" in runs[0].stdout and "rank 1/2" in runs[1].stdout
    for rank in (0, 1):  # its own shard, nothing else: no shared database file at all
        opened = _opened_manifests(tmp_path / f"opened-first-rank{rank}.txt")
        assert opened == {f"manifest-rank{rank}-of-2.sqlite"}, opened
    (location,) = feature_stores_for([TINY], FOUR, None, store_root)
    assert sorted(p.name for p in location.path.glob("manifest*")) == [
        "manifest-rank0-of-2.sqlite",
        "manifest-rank1-of-2.sqlite",
    ]
    for shard in location.path.glob("manifest*"):  # a rollback journal: no WAL, no -shm
        with closing(sqlite3.connect(shard)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    # a reader (any host, after the ranks) sees the shards as one store
    reader = location.open()
    assert [p.name for p in reader.manifests()] == [
        "manifest-rank0-of-2.sqlite",
        "manifest-rank1-of-2.sqlite",
    ]
    assert reader.counts() == {"ok": len(tiny_index), "failed": 0} and reader.verify() == []
    dataset = FeatureDataset(tiny_index, [reader])
    assert not any(isinstance(dataset[i], SkippedVideo) for i in range(len(dataset)))
    assert not (location.path / "manifest.sqlite").exists()  # the reader created nothing

    # rank 0 restarted alone with rank 1's shard unreadable: never opened, nothing redone
    sibling = location.path / "manifest-rank1-of-2.sqlite"
    shutil.move(sibling, tmp_path / "kept.sqlite")
    sibling.write_bytes(b"not a database, and rank 0 must not care" * 100)
    (again,) = _extract_as_ranks(tmp_path, tiny_root, store_root, [0], 2, "again")
    assert "0 extracted" in again.stdout and "0 failed" in again.stdout, again.stdout
    assert _opened_manifests(tmp_path / "opened-again-rank0.txt") == {"manifest-rank0-of-2.sqlite"}
    shutil.move(tmp_path / "kept.sqlite", sibling)
    assert location.open().counts() == {"ok": len(tiny_index), "failed": 0}


def _put(path: Path, shard: tuple[int, int] | None, video: str, ok: bool = True) -> None:
    store = FeatureStore(path, CONFIG, shard=shard)
    if ok:
        store.put(video, DATA)
    else:
        store.put_failed(video, "cannot decode")
    store.close()
    time.sleep(0.002)  # a later write has a later `updated`


def test_readers_see_every_manifest_as_one_latest_row_wins(tmp_path: Path) -> None:
    path = FeatureStore.at(tmp_path, CONFIG).path  # the single-process manifest exists
    _put(path, None, "old.mp4", ok=False)  # failed in a single-process run...
    _put(path, (0, 2), "a.mp4")
    _put(path, (1, 2), "b.mp4")
    _put(path, (1, 2), "c.mp4", ok=False)
    _put(path, (0, 3), "old.mp4")  # ...then extracted by a 3-rank run: the later row counts
    _put(path, (2, 3), "c.mp4")
    reader = FeatureStore(path)
    assert [p.name for p in reader.manifests()] == [
        "manifest.sqlite",
        "manifest-rank0-of-2.sqlite",
        "manifest-rank0-of-3.sqlite",
        "manifest-rank1-of-2.sqlite",
        "manifest-rank2-of-3.sqlite",
    ]
    assert reader.counts() == {"ok": 4, "failed": 0}
    assert reader.done_ids() == {"a.mp4", "b.mp4", "c.mp4", "old.mp4"}
    assert reader.row("c.mp4").status == "ok" and reader.get("old.mp4").shape == DATA.shape
    _put(path, None, "c.mp4", ok=False)  # the latest word on c: it failed
    assert FeatureStore(path).row("c.mp4").status == "failed"
    assert [r.video_id for r in FeatureStore(path).rows("ok")] == ["a.mp4", "b.mp4", "old.mp4"]


def test_a_rank_reads_earlier_runs_but_never_a_sibling_shard(tmp_path: Path) -> None:
    path = FeatureStore.at(tmp_path, CONFIG).path
    for shard in ((0, 2), (1, 2), (0, 3), (1, 3), (2, 3)):
        _put(path, shard, f"v{shard[0]}-{shard[1]}.mp4")
    rank = FeatureStore(path, shard=(1, 3))
    assert [p.name for p in rank.manifests()] == [
        "manifest-rank1-of-3.sqlite",
        "manifest-rank0-of-2.sqlite",
        "manifest-rank1-of-2.sqlite",
        "manifest.sqlite",
    ]
    assert rank.done_ids() == {"v0-2.mp4", "v1-2.mp4", "v1-3.mp4"}
    with pytest.raises(store_module.FeatureStoreError, match="shard needs 0 <= rank"):
        FeatureStore(path, shard=(3, 3))


def test_a_reader_of_a_store_filled_by_ranks_creates_no_manifest(tmp_path: Path) -> None:
    path = FeatureStore.at(tmp_path, CONFIG, shard=(0, 2)).path
    _put(path, (0, 2), "a.mp4")
    reader = FeatureStore(path, CONFIG)
    assert reader.done_ids() == {"a.mp4"} and not (path / "manifest.sqlite").exists()
    reader.put("b.mp4", DATA)  # a single process writing: its own manifest, made now
    assert (path / "manifest.sqlite").is_file() and reader.done_ids() == {"a.mp4", "b.mp4"}


_SCHEMA_3 = """
CREATE TABLE videos (
    video_id TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    num_steps INTEGER NOT NULL DEFAULT 0, dim INTEGER NOT NULL DEFAULT 0,
    file TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '', created REAL NOT NULL, updated REAL NOT NULL,
    nbytes INTEGER NOT NULL DEFAULT -1, dtype TEXT NOT NULL DEFAULT '',
    crc32 INTEGER NOT NULL DEFAULT -1, source_size INTEGER NOT NULL DEFAULT -1,
    source_mtime_ns INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX videos_path ON videos (path);
PRAGMA user_version = 3;
"""


def _wal_store(tmp_path: Path) -> Path:
    """A store as the previous harkit left it: one manifest, WAL mode, schema 3."""
    path = FeatureStore.at(tmp_path, CONFIG).path
    (path / "manifest.sqlite").unlink()
    np.save(path / "features" / "a.mp4.npy", DATA.astype(np.float16))
    nbytes = (path / "features" / "a.mp4.npy").stat().st_size
    db = sqlite3.connect(path / "manifest.sqlite")
    assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    db.executescript(_SCHEMA_3)
    db.execute(
        "INSERT INTO videos VALUES ('a.mp4', 'ok', 3, 512, 'features/a.mp4.npy', '', "
        "'', 0, 0, ?, 'float16', -1, -1, -1)",
        (nbytes,),
    )
    db.execute(
        "INSERT INTO videos VALUES ('b.mp4', 'failed', 0, 0, '', 'bad', '', 0, 0, "
        "-1, '', -1, -1, -1)"
    )
    db.commit()
    db.close()
    return path


def test_an_old_wal_manifest_is_read_by_ranks_and_switched_by_its_writer(tmp_path: Path) -> None:
    path = _wal_store(tmp_path)
    rank = FeatureStore(path, shard=(0, 2))  # reads the old manifest, writes nothing there
    assert rank.done_ids() == {"a.mp4", "b.mp4"} and rank.get("a.mp4").shape == DATA.shape
    rank.close()
    with closing(sqlite3.connect(path / "manifest.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    single = FeatureStore(path)  # its writer: upgraded, and out of WAL for good
    assert single.counts() == {"ok": 1, "failed": 1} and single.verify() == []
    single.close()
    with closing(sqlite3.connect(path / "manifest.sqlite")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA user_version").fetchone()[0] == MANIFEST_VERSION
    assert not list(path.glob("manifest.sqlite-*"))  # no -wal / -shm left behind


def test_batched_rows_are_committed_on_leaving_and_seen_meanwhile(tmp_path: Path) -> None:
    store = FeatureStore.at(tmp_path, CONFIG)
    other = FeatureStore(store.path)
    with store.batched(max_rows=1000, max_seconds=1000):
        store.put("a.mp4", DATA)
        store.put_failed("b.mp4", "bad")
        assert other.done_ids() == set()  # not committed yet (a kill here loses the rows)
        assert store.done_ids() == {"a.mp4", "b.mp4"}  # this object's reads commit first
        store.put("c.mp4", DATA)
    assert other.done_ids() == {"a.mp4", "b.mp4", "c.mp4"}
    with store.batched(max_rows=2, max_seconds=1000):
        store.put("d.mp4", DATA)
        store.put("e.mp4", DATA)  # the second row fills the batch: committed now
        assert "e.mp4" in other.done_ids()


def test_unchanged_feature_files_are_checked_by_stat_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FeatureStore.at(tmp_path, CONFIG)
    for name in ("a.mp4", "b.mp4"):
        store.put(name, DATA)
    headers: list[object] = []
    real = store_module._npy_header
    monkeypatch.setattr(store_module, "_npy_header", lambda h: headers.append(h) or real(h))
    assert store.damaged() == {} and headers == []  # as written: no file opened
    file = store.file_for("b.mp4")
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))
    assert store.damaged() == {} and len(headers) == 1  # touched: its header is read again
    np.save(file, np.zeros((3, 512), np.float32))  # same shape, other dtype and size
    assert list(store.damaged()) == ["b.mp4"]
