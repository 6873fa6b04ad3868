"""The SQLite manifests of a feature store folder: one row per video, read as one.

Each manifest has one writer. A single process writes ``manifest.sqlite``; rank ``k`` of an
``n``-rank extraction (torchrun, srun) writes ``manifest-rank<k>-of-<n>.sqlite`` and opens no
other rank's shard, so ranks on different hosts never share a database file while they work.
Manifests use a rollback journal, never WAL (which needs memory shared by all the processes
using a file, i.e. one host); a manifest written by an older harkit in WAL mode is switched
when its writer next opens it. Readers read every manifest of the folder as one: a video in
several (a re-run with another number of ranks, a single-process run after a sharded one)
counts by its row with the latest ``updated`` time, an ``ok`` row winning a tie. A rank reads
its own shard, ``manifest.sqlite`` and shards of other rank counts (earlier runs), so a
restarted rank or a re-run with other ranks skips what is done.

A row belongs to the source video it was extracted from: schema 3 records that file's size and
``st_mtime_ns`` (one ``os.stat``; a frame folder: the folder's), and a row counts only for a
video whose size *and* mtime_ns equal the recorded ones (:meth:`StoreRow.matches`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harkit.data.jobs import one_line
from harkit.features.errors import FeatureStoreError

__all__ = [
    "MANIFEST",
    "MANIFEST_VERSION",
    "Manifests",
    "SourceStamp",
    "StoreRow",
    "manifest_name",
    "source_stamp",
]

MANIFEST = "manifest.sqlite"
"""The manifest a single process writes."""
MANIFEST_VERSION = 4
"""``PRAGMA user_version`` of the manifest: 2 added nbytes/dtype/crc32, 3 the source file's
size and mtime_ns, 4 the feature file's mtime_ns as written (0 = the first layout)."""
_BUSY_TIMEOUT_MS = 120_000
SqlArgs = tuple[Any, ...] | dict[str, Any]
_LEAVE_WAL_TIMEOUT_MS = 2_000

SourceStamp = tuple[int, int]
"""``(size, mtime_ns)`` of a source video (a frame folder: of the folder)."""


def source_stamp(path: str | os.PathLike[str]) -> SourceStamp | None:
    """``(st_size, st_mtime_ns)`` of the video at ``path``; ``None`` when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class StoreRow:
    """One manifest row."""

    video_id: str
    status: Literal["ok", "failed"]
    num_steps: int
    dim: int
    file: str
    error: str
    path: str
    created: float
    updated: float
    nbytes: int = -1
    """File size in bytes; -1 for rows written before manifest schema 2."""
    dtype: str = ""
    crc32: int = -1
    """CRC-32 of the whole file; -1 when unknown."""
    source_size: int = -1
    """Size of the source video at extraction; -1 when unknown (before manifest schema 3)."""
    source_mtime_ns: int = -1
    """``st_mtime_ns`` of the source video at extraction; -1 when unknown."""
    file_mtime_ns: int = -1
    """``st_mtime_ns`` of the feature file as written (schema 4): a file with this mtime and
    ``nbytes`` is the one written, so its header is not re-read; -1 when unknown."""

    def matches(self, stamp: SourceStamp | None) -> bool:
        """Whether this row was made from a file with ``stamp`` (size and mtime_ns both equal).
        Unknown on either side (an old row, a video that cannot be stat'ed) counts as a match."""
        if stamp is None or self.source_size < 0 or self.source_mtime_ns < 0:
            return True
        return (self.source_size, self.source_mtime_ns) == tuple(stamp)


_TABLE = """
CREATE TABLE videos (
    video_id  TEXT PRIMARY KEY,
    status    TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    num_steps INTEGER NOT NULL DEFAULT 0,
    dim       INTEGER NOT NULL DEFAULT 0,
    file      TEXT NOT NULL DEFAULT '',
    error     TEXT NOT NULL DEFAULT '',
    path      TEXT NOT NULL DEFAULT '',
    created   REAL NOT NULL,
    updated   REAL NOT NULL,
    nbytes    INTEGER NOT NULL DEFAULT -1,
    dtype     TEXT NOT NULL DEFAULT '',
    crc32     INTEGER NOT NULL DEFAULT -1,
    source_size     INTEGER NOT NULL DEFAULT -1,
    source_mtime_ns INTEGER NOT NULL DEFAULT -1,
    file_mtime_ns   INTEGER NOT NULL DEFAULT -1
)"""
# schema 0 -> 2 -> 3 -> 4: ADD COLUMN appends, so old and new tables end up with one column order
_ADDED_COLUMNS = (
    "nbytes INTEGER NOT NULL DEFAULT -1",
    "dtype TEXT NOT NULL DEFAULT ''",
    "crc32 INTEGER NOT NULL DEFAULT -1",
    "source_size INTEGER NOT NULL DEFAULT -1",
    "source_mtime_ns INTEGER NOT NULL DEFAULT -1",
    "file_mtime_ns INTEGER NOT NULL DEFAULT -1",
)


def _stamp_or_unknown(source: SourceStamp | None, path: str | Path) -> SourceStamp:
    """``source``, else the stamp of ``path`` now, else ``(-1, -1)`` (unknown)."""
    if source is None and str(path):
        source = source_stamp(path)
    return source if source is not None else (-1, -1)


def manifest_name(rank: int = 0, world_size: int = 1) -> str:
    """The manifest file rank ``rank`` of ``world_size`` writes: ``manifest.sqlite`` for a
    single process, else ``manifest-rank<rank>-of-<world_size>.sqlite``."""
    if world_size == 1:
        return MANIFEST
    return f"manifest-rank{rank}-of-{world_size}.sqlite"


_SHARD_NAME = re.compile(r"manifest-rank(\d+)-of-(\d+)\.sqlite")
_MISSING_COLUMN_DEFAULTS = {
    "nbytes": "-1",
    "dtype": "''",
    "crc32": "-1",
    "source_size": "-1",
    "source_mtime_ns": "-1",
    "file_mtime_ns": "-1",
}


def _is_manifest(name: str) -> bool:
    return name == MANIFEST or _SHARD_NAME.fullmatch(name) is not None


def _newest(a: StoreRow, b: StoreRow) -> StoreRow:
    """The row that counts when two manifests both hold a video: the later ``updated``; on a
    tie an ``ok`` row over a ``failed`` one; else the first."""
    return b if (b.updated, b.status == "ok") > (a.updated, a.status == "ok") else a


class _Manifest:
    """One manifest file: SQLite in a rollback-journal mode (never WAL), a connection per
    process. Only the store's writer manifest is ever written (and created or upgraded);
    the others are read as their schema stands."""

    def __init__(self, path: Path, store: Path, *, writer: bool) -> None:
        self.path, self.store, self.writer = path, store, writer
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._select: str | None = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers / spawn: no live handle
        return {**self.__dict__, "_conn": None, "_pid": -1, "_select": None}

    @contextmanager
    def errors(self) -> Iterator[None]:
        """SQLite errors -> one :class:`FeatureStoreError` line naming this manifest."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise FeatureStoreError(
                    f"{self.path} stayed locked for {_BUSY_TIMEOUT_MS // 1000} s ({exc}); "
                    "another process is writing it: let it finish and re-run"
                ) from None
            raise FeatureStoreError(
                f"{self.path} is not a readable SQLite database ({one_line(exc)}); delete the "
                f"folder {self.store} to re-extract"
            ) from None

    def connection(self) -> sqlite3.Connection:
        # a connection must not cross fork(): reopen in each process
        if self._conn is None or self._pid != os.getpid():
            mode = "rwc" if self.writer else "rw"  # a reader never creates a manifest
            with self.errors():
                conn = sqlite3.connect(
                    f"{self.path.absolute().as_uri()}?mode={mode}",
                    uri=True,
                    timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                )
                try:
                    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                    if self.writer:
                        _leave_wal(conn)
                    conn.execute("PRAGMA synchronous = FULL")
                except BaseException:
                    conn.close()
                    raise
            self._conn, self._pid, self._select = conn, os.getpid(), None
        return self._conn

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.errors():
            return self.connection().execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.errors(), _Transaction(self.connection()) as db:
            yield db

    def layout(self) -> tuple[int, list[str]]:
        version = self.query("PRAGMA user_version")[0][0]
        return version, [r[1] for r in self.query("PRAGMA table_info(videos)")]

    def check_version(self, version: int) -> None:
        if version > MANIFEST_VERSION:
            raise FeatureStoreError(
                f"{self.path} was written by a newer harkit (manifest schema {version}, this "
                f"one reads up to {MANIFEST_VERSION}); upgrade harkit, or delete the folder "
                f"{self.store} to re-extract"
            )

    def select(self) -> str | None:
        """``StoreRow`` columns as this manifest's layout holds them (columns an older schema
        lacks read as unknown); None while it has no table (a rank just starting)."""
        if self._select is None or self._pid != os.getpid():
            version, columns = self.layout()
            self.check_version(version)
            if not columns:
                return None
            self._select = ", ".join(
                name if name in columns else f"{_MISSING_COLUMN_DEFAULTS[name]} AS {name}"
                for name in StoreRow.__dataclass_fields__
            )
        return self._select

    def rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[StoreRow]:
        select = self.select()
        if select is None:
            return []
        return [StoreRow(*r) for r in self.query(f"SELECT {select} FROM videos {where}", args)]

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn, self._select = None, None


def _leave_wal(conn: sqlite3.Connection) -> None:
    """Switch a manifest written by an older harkit (WAL mode, which needs memory shared by
    every process using the file, so one host) to a rollback journal. Needs the file to
    itself: while another process holds it open it stays WAL for now (fine on one host)."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return
    conn.execute(f"PRAGMA busy_timeout = {_LEAVE_WAL_TIMEOUT_MS}")
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.OperationalError:  # locked by another process
        pass
    finally:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error): takes the write lock up front,
    so concurrent writers wait on the busy timeout instead of failing on lock upgrade."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class Manifests:
    """The manifests of the store folder ``folder`` as one.

    Rank ``rank`` of ``world_size`` writes only :func:`manifest_name` ``(rank, world_size)``
    and reads its own shard, the single-process manifest and shards of other world sizes,
    never a sibling rank's shard; a single process writes ``manifest.sqlite`` and reads every
    manifest. Of a video's rows in several manifests the one with the later ``updated`` time
    counts (an ``ok`` row over a ``failed`` one on a tie).
    """

    def __init__(self, folder: Path, rank: int = 0, world_size: int = 1) -> None:
        self.folder, self.world_size = folder, world_size
        self._writer = _Manifest(folder / manifest_name(rank, world_size), folder, writer=True)
        self._readers: dict[str, _Manifest] = {}
        self._listing: tuple[int, list[str]] | None = None
        self._prepared = False
        self._pending: list[tuple[str, SqlArgs]] | None = None
        self._batch = (0, 0.0, 0.0)  # max rows, max seconds, when the first pending row came
        # A rank's shard is made at once; the single-process manifest too in a store that has
        # none yet, else only when first written (a reader of a store filled by ranks, on any
        # host, creates nothing).
        if world_size > 1 or self._writer.path.is_file() or not self._names():
            self._prepare()

    @property
    def writer_path(self) -> Path:
        """The manifest this process writes."""
        return self._writer.path

    def _prepare(self) -> None:
        """Create the writer manifest's table, or upgrade an older one in place (once, under
        the lock)."""
        writer = self._writer
        version, columns = writer.layout()
        if version == MANIFEST_VERSION and columns:
            pass
        elif version > MANIFEST_VERSION:
            writer.check_version(version)
        else:
            with writer.transaction() as db:  # another process may have done it meanwhile
                version, columns = writer.layout()
                if not columns:
                    db.execute(_TABLE)
                elif version < MANIFEST_VERSION:
                    for column in _ADDED_COLUMNS:
                        if column.split()[0] not in columns:
                            db.execute(f"ALTER TABLE videos ADD COLUMN {column}")
                db.execute("CREATE INDEX IF NOT EXISTS videos_path ON videos (path)")
                db.execute(f"PRAGMA user_version = {MANIFEST_VERSION}")
            version, columns = writer.layout()
            writer.close()  # reopened with the new layout
        if columns != list(StoreRow.__dataclass_fields__):
            raise FeatureStoreError(
                f"{writer.path} has an unexpected layout (columns: {', '.join(columns)}); "
                f"delete the folder {self.folder} to re-extract"
            )
        self._prepared = True

    def _names(self) -> list[str]:
        """The manifest files in the folder (listed again when the folder changed)."""
        try:
            changed = os.stat(self.folder).st_mtime_ns
        except OSError:
            changed = -1
        if self._listing is None or self._listing[0] != changed:
            try:
                names = sorted(n for n in os.listdir(self.folder) if _is_manifest(n))
            except OSError:
                names = []
            self._listing = (changed, names)
        return self._listing[1]

    def _read(self) -> list[_Manifest]:
        """What this process reads: its own manifest first, then the others it may read."""
        out = [self._writer] if self._prepared else []
        for name in self._names():
            if name == self._writer.path.name:
                if not self._prepared:
                    out.insert(0, self._writer)
                continue
            shard = _SHARD_NAME.fullmatch(name)
            if self.world_size > 1 and shard is not None and int(shard[2]) == self.world_size:
                continue  # a sibling rank's shard, being written meanwhile: never opened
            if name not in self._readers:
                self._readers[name] = _Manifest(self.folder / name, self.folder, writer=False)
            out.append(self._readers[name])
        return out

    def paths(self) -> list[Path]:
        """The manifest files this process reads (its own first)."""
        return [m.path for m in self._read()]

    def _write(self, sql: str, args: SqlArgs) -> None:
        if self._pending is not None:
            if not self._pending:
                self._batch = (*self._batch[:2], time.monotonic())
            self._pending.append((sql, args))
            rows, seconds, since = self._batch
            if len(self._pending) >= rows or time.monotonic() - since >= seconds:
                self.flush()
            return
        if not self._prepared:
            self._prepare()
        with self._writer.transaction() as db:
            db.execute(sql, args)

    def flush(self) -> None:
        """Commit the rows :meth:`batched` holds back (one transaction)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._prepared:
            self._prepare()
        with self._writer.transaction() as db:
            for sql, args in pending:
                db.execute(sql, args)

    @contextmanager
    def batched(self, max_rows: int, max_seconds: float) -> Iterator[None]:
        """Group commits (see :meth:`harkit.features.FeatureStore.batched`)."""
        if self._pending is not None:  # nested: the outer batch decides
            yield
            return
        self._pending, self._batch = [], (max_rows, max_seconds, time.monotonic())
        try:
            yield
        finally:
            try:
                self.flush()
            finally:
                self._pending = None

    def close(self) -> None:
        self.flush()
        for manifest in (self._writer, *self._readers.values()):
            manifest.close()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers / spawn
        if self._pending:
            self.flush()
        return {**self.__dict__, "_pending": None}

    def record_ok(
        self,
        video_id: str,
        shape: tuple[int, int],
        file: str,
        *,
        path: str | Path,
        source: SourceStamp | None,
        nbytes: int,
        dtype: str,
        crc32: int,
        file_mtime_ns: int,
    ) -> None:
        """The row of a feature file just written (``file``: relative to the folder)."""
        size, mtime = _stamp_or_unknown(source, path)
        now = time.time()
        self._write(
            "INSERT INTO videos (video_id, status, num_steps, dim, file, error, path, created, "
            "updated, nbytes, dtype, crc32, source_size, source_mtime_ns, file_mtime_ns) "
            "VALUES (:video_id, 'ok', :num_steps, :dim, :file, '', :path, :now, :now, :nbytes, "
            ":dtype, :crc32, :source_size, :source_mtime_ns, :file_mtime_ns) "
            "ON CONFLICT(video_id) DO UPDATE SET status='ok', num_steps=excluded.num_steps, "
            "dim=excluded.dim, file=excluded.file, error='', path=excluded.path, "
            "updated=excluded.updated, nbytes=excluded.nbytes, dtype=excluded.dtype, "
            "crc32=excluded.crc32, source_size=excluded.source_size, "
            "source_mtime_ns=excluded.source_mtime_ns, file_mtime_ns=excluded.file_mtime_ns",
            {
                "video_id": video_id,
                "num_steps": shape[0],
                "dim": shape[1],
                "file": file,
                "path": str(path),
                "now": now,
                "nbytes": nbytes,
                "dtype": dtype,
                "crc32": crc32,
                "source_size": size,
                "source_mtime_ns": mtime,
                "file_mtime_ns": file_mtime_ns,
            },
        )

    def record_failed(
        self, video_id: str, error: str, *, path: str | Path, source: SourceStamp | None
    ) -> None:
        """The row of a video that could not be processed (its old file, if any, is kept)."""
        size, mtime = _stamp_or_unknown(source, path)
        now = time.time()
        self._write(
            "INSERT INTO videos (video_id, status, num_steps, dim, file, error, path, "
            "created, updated, source_size, source_mtime_ns) "
            "VALUES (?, 'failed', 0, 0, '', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(video_id) DO UPDATE SET status='failed', num_steps=0, dim=0, "
            "file='', error=excluded.error, path=excluded.path, updated=excluded.updated, "
            "nbytes=-1, dtype='', crc32=-1, source_size=excluded.source_size, "
            "source_mtime_ns=excluded.source_mtime_ns, file_mtime_ns=-1",
            (video_id, error, str(path), now, now, size, mtime),
        )

    def _all_rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[StoreRow]:
        """Rows of every manifest read (several per video where manifests overlap)."""
        if self._pending:
            self.flush()
        found: list[StoreRow] = []
        for manifest in self._read():
            found += manifest.rows(where, args)
        return found

    def _newest_of(self, where: str, args: tuple[Any, ...]) -> StoreRow | None:
        best = None
        for row in self._all_rows(where, args):
            best = row if best is None else _newest(best, row)
        return best

    def row_for_id(self, video_id: str) -> StoreRow | None:
        """The row that counts for ``video_id`` (see :meth:`latest_rows`), or None."""
        return self._newest_of("WHERE video_id = ?", (video_id,))

    def row_for_path(self, path: str) -> StoreRow | None:
        """The row that counts among those recorded for the video file ``path`` (absolute)."""
        return self._newest_of("WHERE path = ? ORDER BY updated DESC LIMIT 1", (path,))

    def latest_rows(self) -> dict[str, StoreRow]:
        """Every video's row: where manifests overlap, the one with the later ``updated`` time
        (an ``ok`` row over a ``failed`` one on a tie). One read of each manifest."""
        merged: dict[str, StoreRow] = {}
        for row in self._all_rows():
            old = merged.get(row.video_id)
            merged[row.video_id] = row if old is None else _newest(old, row)
        return merged
