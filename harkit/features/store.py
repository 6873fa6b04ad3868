"""`FeatureStore`: cached per-video features of one configuration, resumable and shareable.

Layout (one folder per configuration)::

    <store root>/<backbone>-<layer|pooled>-<key>/
        config.json        every field that changes the features (human readable)
        manifest.sqlite    one row per video: id, status ok|failed, steps, dim, file, error,
                           and the file's size, dtype and CRC-32 (manifest schema 2), the
                           source video's size and mtime_ns at extraction (schema 3) and the
                           feature file's mtime_ns as written (schema 4)
        manifest-rank<k>-of-<n>.sqlite
                           the same, written by rank k of an n-rank extraction only
        features/<id>.npy  float16 (default) or float32 array (T, D)

``key`` is a hash of ``config.json``'s fields (backbone, weights tag, layer, stream,
preprocessing, sampling, dtype, format version). A feature file is written to a temp name and
renamed, and only then is its manifest row committed: a kill between the two leaves a file
without a row, which the next run simply writes again; a row never points at a missing or
half-written file.

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

Every read checks the file against its row, so a truncated, emptied or overwritten file is a
:class:`DamagedFeatureError` naming the file, never a stray ``EOFError``: memory-mapped reads
and :meth:`FeatureStore.damaged` (which ``extract`` runs to redo such files) check the size and
the ``.npy`` header (for a file whose size and mtime_ns are those its row recorded when it was
written, schema 4, the size alone: it is the file written, and no header is opened again);
full reads (training) also the CRC-32. Stores written before schema 2 are upgraded in place;
their old rows, having no recorded size, are checked against the size their header implies.

A row belongs to the source video it was extracted from: schema 3 records that file's size and
``st_mtime_ns`` (one ``os.stat``; a frame folder: the folder's). Ids are paths relative to a
dataset root, so another dataset with the same layout has the same ids: a row counts only for
a video whose size *and* mtime_ns equal the recorded ones (:meth:`StoreRow.matches`). The path
is not compared, so a moved or copied-with-times (``cp -p``, ``rsync -a``) dataset is still
reused. Rows written before schema 3 (nothing recorded) match any file; a video that cannot be
stat'ed (deleted after extraction) matches any row.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import PositiveInt, ValidationError

from harkit.backbones import get_backbone_spec, weights_tag
from harkit.config import StrictModel
from harkit.data.jobs import one_line
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.errors import HarkitError
from harkit.io import atomic_output, atomic_write_text
from harkit.models.recipe import FeatureSource

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "MANIFEST_VERSION",
    "DamagedFeatureError",
    "FeatureStore",
    "FeatureStoreError",
    "SourceStamp",
    "StoreConfig",
    "StoreRow",
    "manifest_name",
    "source_stamp",
    "store_config",
]

FEATURE_FORMAT_VERSION = 1
MANIFEST_VERSION = 4
"""``PRAGMA user_version`` of the manifest: 2 added nbytes/dtype/crc32, 3 the source file's
size and mtime_ns, 4 the feature file's mtime_ns as written (0 = the first layout)."""
_KEY_CHARS = 16
_BUSY_TIMEOUT_MS = 120_000
_LEAVE_WAL_TIMEOUT_MS = 2_000
StoreDtype = Literal["float16", "float32"]


SourceStamp = tuple[int, int]
"""``(size, mtime_ns)`` of a source video (a frame folder: of the folder)."""


def source_stamp(path: str | os.PathLike[str]) -> SourceStamp | None:
    """``(st_size, st_mtime_ns)`` of the video at ``path``; ``None`` when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class FeatureStoreError(HarkitError):
    """A store is missing, belongs to another configuration, or lacks a video."""


class DamagedFeatureError(FeatureStoreError):
    """An ``ok`` row's file is missing, truncated or not what the manifest recorded."""

    def __init__(self, file: Path, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(f"feature file {file} {reason}; `harkit extract` re-extracts it")


class StoreConfig(StrictModel):
    """Everything that changes the stored features; its hash names the store folder."""

    backbone: str
    weights: str
    """Weights tag: ``none``, ``imagenet``, ``kinetics`` or ``file:<sha256 prefix>``."""
    layer: str | None = None
    grid: PositiveInt = 1
    """The layer's map averaged over ``grid x grid`` cells (1: over the whole frame)."""
    stream: Literal["rgb", "flow"] = "rgb"
    kind: Literal["frame", "segment"]
    feature_dim: PositiveInt
    input_size: PositiveInt | tuple[PositiveInt, PositiveInt]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: PositiveInt | None = None
    """The weights entry's resize (used where ``transform`` sets none); None: the crop's."""
    interpolation: str = "bilinear"
    """The weights entry's (antialiased) resize interpolation."""
    transform: TransformConfig
    sampling: SamplingConfig
    sampling_id: str
    """``SamplingConfig.describe()``, for people reading ``config.json``."""
    flow_method: str | None = None
    dtype: StoreDtype = "float16"
    format_version: int = FEATURE_FORMAT_VERSION

    def key(self) -> str:
        fields = self.model_dump(mode="json")
        if fields["grid"] == 1:  # the key of every store made before grids existed
            del fields["grid"]
        # likewise for the stores made before weights entries had their own resize / interpolation
        if fields["resize_size"] is None:
            del fields["resize_size"]
        if fields["interpolation"] == "bilinear":
            del fields["interpolation"]
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:_KEY_CHARS]

    def folder_name(self) -> str:
        layer = (self.layer or "pooled").replace("/", "_")
        layer += f"-grid{self.grid}" if self.grid > 1 else ""
        flow = "-flow" if self.stream == "flow" and "flow" not in self.backbone else ""
        return f"{self.backbone}{flow}-{layer}-{self.key()}"


def store_config(
    source: FeatureSource,
    sampling: SamplingConfig,
    transform: TransformConfig | None = None,
    *,
    dtype: StoreDtype = "float16",
    flow_method: str | None = None,
) -> StoreConfig:
    """The store configuration of ``source`` under ``sampling`` / ``transform``.

    Input size, mean/std, resize and interpolation are the chosen weights entry's
    (``spec.preprocessing_for(source.weights)``), sizes overridden by ``transform`` (as
    :class:`~harkit.features.extractor.Preprocessor` does); ``flow_method`` only counts for
    flow sources. A local weights file is identified by its content hash.
    """
    spec = get_backbone_spec(source.backbone)
    prep = spec.preprocessing_for(source.weights)  # the chosen weights entry's
    transform = transform or TransformConfig()
    dim = spec.feature_dim
    if source.layer is not None:
        if source.layer not in spec.layers:
            raise FeatureStoreError(
                f"backbone {spec.name!r} has no layer {source.layer!r}; "
                f"available: {', '.join(spec.layers) or '(none)'}"
            )
        dim = spec.layers[source.layer] * source.grid**2
    return StoreConfig(
        backbone=spec.name,
        weights=weights_tag(source.weights),
        layer=source.layer,
        grid=source.grid,
        stream=source.stream,
        kind=spec.kind,
        feature_dim=dim,
        input_size=transform.crop_size or prep.input_size,  # a pair: [height, width]
        mean=prep.mean,
        std=prep.std,
        resize_size=None if transform.resize or transform.crop_size else prep.resize_size,
        interpolation=prep.interpolation,
        transform=transform,
        sampling=sampling,
        sampling_id=sampling.describe(),
        flow_method=flow_method if source.stream == "flow" else None,
        dtype=dtype,
    )


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


def _check_folder(path: Path) -> None:
    """Refuse a store path that is, or lies under, a file (instead of a mkdir traceback)."""
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise FeatureStoreError(
                    f"{folder} is a file, not a folder; a feature store needs a folder there "
                    "(move the file away or choose another --store)"
                )
            return


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the file"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _npy_header(handle: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of the ``.npy`` stream ``handle`` (reads the header only)."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), dtype, handle.tell()


def _stamp_or_unknown(source: SourceStamp | None, path: str | Path) -> SourceStamp:
    """``source``, else the stamp of ``path`` now, else ``(-1, -1)`` (unknown)."""
    if source is None and str(path):
        source = source_stamp(path)
    return source if source is not None else (-1, -1)


def _check_id(video_id: str) -> str:
    if os.sep == "/" and all(p not in ("", ".", "..") for p in video_id.split("/")):
        return video_id  # already a clean relative POSIX path (no pathlib: once per row)
    parts = Path(video_id).parts
    if not video_id or Path(video_id).is_absolute() or ".." in parts:
        raise FeatureStoreError(f"video id must be a relative path inside the store: {video_id!r}")
    return Path(video_id).as_posix()


def manifest_name(rank: int = 0, world_size: int = 1) -> str:
    """The manifest file rank ``rank`` of ``world_size`` writes: ``manifest.sqlite`` for a
    single process, else ``manifest-rank<rank>-of-<world_size>.sqlite``."""
    if world_size == 1:
        return FeatureStore.MANIFEST
    return f"manifest-rank{rank}-of-{world_size}.sqlite"


_SHARD_NAME = re.compile(r"manifest-rank(\d+)-of-(\d+)\.sqlite")
_MISSING_COLUMN_DEFAULTS = {
    "nbytes": "-1", "dtype": "''", "crc32": "-1", "source_size": "-1",
    "source_mtime_ns": "-1", "file_mtime_ns": "-1",
}  # fmt: skip


def _is_manifest(name: str) -> bool:
    return name == FeatureStore.MANIFEST or _SHARD_NAME.fullmatch(name) is not None


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
                    f"{self.path.absolute().as_uri()}?mode={mode}", uri=True,
                    timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                )  # fmt: skip
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


class FeatureStore:
    """One configuration's features (see the module docstring).

    ``FeatureStore(path, config)`` opens the store at ``path``, creating it when absent; an
    existing store with another configuration raises :class:`FeatureStoreError` naming the
    fields that differ. ``FeatureStore(path)`` opens an existing store as it is.
    ``FeatureStore.at(root, config)`` places the store under ``root`` by its key.

    ``shard=(rank, world_size)`` (``world_size > 1``) makes this process rank ``rank``: it
    writes only ``manifest-rank<rank>-of-<world_size>.sqlite`` and reads its own shard, the
    single-process manifest and shards of other world sizes, never a sibling rank's shard.
    Without it the store writes ``manifest.sqlite`` and reads every manifest as one.
    """

    CONFIG = "config.json"
    MANIFEST = "manifest.sqlite"
    FEATURES = "features"

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: StoreConfig | None = None,
        *,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        rank, world_size = shard or (0, 1)
        if world_size < 1 or not 0 <= rank < world_size:
            raise FeatureStoreError(f"shard needs 0 <= rank < world_size, got {shard}")
        self.shard = (rank, world_size)
        _check_folder(self.path)
        stamp = self.path / self.CONFIG
        if stamp.is_file():
            try:
                stored = StoreConfig.model_validate(json.loads(stamp.read_text(encoding="utf-8")))
            except ValidationError as exc:
                raise FeatureStoreError(
                    f"{stamp} is not a readable store config ({_first_problem(exc)}); delete "
                    f"the folder {self.path} to re-extract"
                ) from None
            except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
                raise FeatureStoreError(
                    f"{stamp} is not a readable store config ({one_line(exc)}); delete the "
                    f"folder {self.path} to re-extract"
                ) from None
            if config is not None and config != stored:
                raise FeatureStoreError(
                    f"{self.path} holds features of another configuration; fields that differ: "
                    + _differences(stored, config)
                )
            self.config = stored
        elif config is None:
            raise FeatureStoreError(f"{self.path} is not a feature store (no {self.CONFIG})")
        else:
            self.config = config
            (self.path / self.FEATURES).mkdir(parents=True, exist_ok=True)
            atomic_write_text(stamp, json.dumps(config.model_dump(mode="json"), indent=1) + "\n")
        self._writer = _Manifest(
            self.path / manifest_name(rank, world_size), self.path, writer=True
        )
        self._readers: dict[str, _Manifest] = {}
        self._listing: tuple[int, list[str]] | None = None
        self._prepared = False
        self._pending: list[tuple[str, tuple[Any, ...]]] | None = None
        self._batch = (0, 0.0, 0.0)  # max rows, max seconds, when the first pending row came
        # A rank's shard is made at once; the single-process manifest too in a store that has
        # none yet, else only when first written (a reader of a store filled by ranks, on any
        # host, creates nothing).
        if world_size > 1 or self._writer.path.is_file() or not self._manifest_names():
            self._prepare_manifest()

    @classmethod
    def at(
        cls,
        root: str | os.PathLike[str],
        config: StoreConfig,
        *,
        shard: tuple[int, int] | None = None,
    ) -> FeatureStore:
        return cls(Path(root) / config.folder_name(), config, shard=shard)

    @property
    def key(self) -> str:
        return self.config.key()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.dtype)

    @property
    def manifest(self) -> Path:
        """The manifest this process writes."""
        return self._writer.path

    # -- manifest ---------------------------------------------------------------------------

    def _prepare_manifest(self) -> None:
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
                f"delete the folder {self.path} to re-extract"
            )
        self._prepared = True

    def _manifest_names(self) -> list[str]:
        """The manifest files in the folder (listed again when the folder changed)."""
        try:
            changed = os.stat(self.path).st_mtime_ns
        except OSError:
            changed = -1
        if self._listing is None or self._listing[0] != changed:
            try:
                names = sorted(n for n in os.listdir(self.path) if _is_manifest(n))
            except OSError:
                names = []
            self._listing = (changed, names)
        return self._listing[1]

    def _manifests(self) -> list[_Manifest]:
        """What this process reads: its own manifest first, then the others it may read."""
        world_size = self.shard[1]
        out = [self._writer] if self._prepared else []
        for name in self._manifest_names():
            if name == self._writer.path.name:
                if not self._prepared:
                    out.insert(0, self._writer)
                continue
            shard = _SHARD_NAME.fullmatch(name)
            if world_size > 1 and shard is not None and int(shard[2]) == world_size:
                continue  # a sibling rank's shard, being written meanwhile: never opened
            if name not in self._readers:
                self._readers[name] = _Manifest(self.path / name, self.path, writer=False)
            out.append(self._readers[name])
        return out

    def manifests(self) -> list[Path]:
        """The manifest files this process reads (its own first)."""
        return [m.path for m in self._manifests()]

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        if self._pending is not None:
            if not self._pending:
                self._batch = (*self._batch[:2], time.monotonic())
            self._pending.append((sql, args))
            rows, seconds, since = self._batch
            if len(self._pending) >= rows or time.monotonic() - since >= seconds:
                self.flush()
            return
        if not self._prepared:
            self._prepare_manifest()
        with self._writer.transaction() as db:
            db.execute(sql, args)

    def flush(self) -> None:
        """Commit the rows :meth:`batched` holds back (one transaction)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._prepared:
            self._prepare_manifest()
        with self._writer.transaction() as db:
            for sql, args in pending:
                db.execute(sql, args)

    @contextmanager
    def batched(self, max_rows: int = 256, max_seconds: float = 1.0) -> Iterator[FeatureStore]:
        """Group commits: rows written inside are committed together, at the latest once
        ``max_rows`` wait or the first has waited ``max_seconds`` (checked on each write), and
        on leaving. A committed row's file is on disk, as without batching; a process killed
        meanwhile loses the rows not yet committed, and the next run extracts those videos
        again (their files are rewritten). Reads through this object see every row."""
        if self._pending is not None:  # nested: the outer batch decides
            yield self
            return
        self._pending, self._batch = [], (max_rows, max_seconds, time.monotonic())
        try:
            yield self
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

    def _all_rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[StoreRow]:
        """Rows of every manifest read (several per video where manifests overlap)."""
        if self._pending:
            self.flush()
        found: list[StoreRow] = []
        for manifest in self._manifests():
            found += manifest.rows(where, args)
        return found

    def latest_rows(self) -> dict[str, StoreRow]:
        """Every video's row: where manifests overlap, the one that counts (:func:`_newest`).
        One read of each manifest: what ``extract`` decides from."""
        merged: dict[str, StoreRow] = {}
        for row in self._all_rows():
            old = merged.get(row.video_id)
            merged[row.video_id] = row if old is None else _newest(old, row)
        return merged

    def file_for(self, video_id: str) -> Path:
        return self.path / self.FEATURES / f"{_check_id(video_id)}.npy"

    def put(
        self,
        video_id: str,
        features: np.ndarray | torch.Tensor,
        *,
        path: str | Path = "",
        source: SourceStamp | None = None,
    ) -> Path:
        """Store ``(T, D)`` features of ``video_id``: file written atomically, then the row.
        ``source`` is the video's :func:`source_stamp` (default: stat ``path`` now; take it
        before decoding so a file changed meanwhile is redone next run)."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().float().numpy()
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise FeatureStoreError(
                f"{video_id}: features must be (T, {self.config.feature_dim}), got {features.shape}"
            )
        if not np.isfinite(features).all():
            raise FeatureStoreError(f"{video_id}: features contain NaN or inf")
        with np.errstate(over="ignore"):  # an overflow is refused just below
            stored = features.astype(self.dtype, copy=False)
        if not np.isfinite(stored).all():  # checked after the cast: float16 ends at 65504
            raise FeatureStoreError(
                f"{video_id}: features past {np.finfo(self.dtype).max:.0f} overflow "
                f"{np.dtype(self.dtype).name} (extract with --dtype fp32)"
            )
        target = self.file_for(video_id)
        with atomic_output(target, suffix=".npy") as tmp:
            np.save(tmp, stored)
            written = tmp.read_bytes()  # size and checksum of what is on disk, for later reads
            file_mtime = os.stat(tmp).st_mtime_ns  # kept by the rename: the file as written
        size, mtime = _stamp_or_unknown(source, path)
        now = time.time()
        self._write(
            "INSERT INTO videos (video_id, status, num_steps, dim, file, error, path, "
            "created, updated, nbytes, dtype, crc32, source_size, source_mtime_ns, "
            "file_mtime_ns) VALUES (?, 'ok', ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(video_id) DO UPDATE SET status='ok', num_steps=excluded.num_steps, "
            "dim=excluded.dim, file=excluded.file, error='', path=excluded.path, "
            "updated=excluded.updated, nbytes=excluded.nbytes, dtype=excluded.dtype, "
            "crc32=excluded.crc32, source_size=excluded.source_size, "
            "source_mtime_ns=excluded.source_mtime_ns, file_mtime_ns=excluded.file_mtime_ns",
            (
                _check_id(video_id), features.shape[0], features.shape[1],
                target.relative_to(self.path).as_posix(), str(path), now, now,
                len(written), self.config.dtype, zlib.crc32(written), size, mtime, file_mtime,
            ),
        )  # fmt: skip
        return target

    def put_failed(
        self,
        video_id: str,
        error: str,
        *,
        path: str | Path = "",
        source: SourceStamp | None = None,
    ) -> None:
        """Record that ``video_id`` could not be processed (its old file, if any, is kept);
        ``source`` as in :meth:`put`, so the video is retried once its file changes."""
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
            (_check_id(video_id), error, str(path), now, now, size, mtime),
        )

    def _one(self, found: list[StoreRow]) -> StoreRow | None:
        best = None
        for row in found:
            best = row if best is None else _newest(best, row)
        return best

    def row(self, video_id: str) -> StoreRow | None:
        return self._one(self._all_rows("WHERE video_id = ?", (_check_id(video_id),)))

    def find_path(self, path: str | Path) -> StoreRow | None:
        """The row recorded for the video file ``path`` (absolute path at extraction)."""
        return self._one(self._all_rows(
            "WHERE path = ? ORDER BY updated DESC LIMIT 1", (os.path.abspath(path),)
        ))  # fmt: skip

    def rows(self, status: str | None = None) -> Iterator[StoreRow]:
        merged = self.latest_rows()
        for vid in sorted(merged):
            if status is None or merged[vid].status == status:
                yield merged[vid]

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Ids with a row (``ok``, and ``failed`` unless ``include_failed=False``)."""
        return {
            vid for vid, row in self.latest_rows().items() if include_failed or row.status == "ok"
        }

    def changed(self, stamps: dict[str, SourceStamp | None]) -> set[str]:
        """Ids of ``stamps`` (id -> the video's current :func:`source_stamp`) whose row, ok or
        failed, was made from another file (:meth:`StoreRow.matches` is false)."""
        return {
            vid for vid, row in self.latest_rows().items()
            if vid in stamps and not row.matches(stamps[vid])
        }  # fmt: skip

    def counts(self) -> dict[str, int]:
        found = {"ok": 0, "failed": 0}
        for row in self.latest_rows().values():
            found[row.status] += 1
        return found

    def __len__(self) -> int:
        return sum(self.counts().values())

    def __contains__(self, video_id: object) -> bool:
        return (
            isinstance(video_id, str)
            and (r := self.row(video_id)) is not None
            and (r.status == "ok")
        )

    # -- features ---------------------------------------------------------------------------

    def _check_size(self, row: StoreRow, file: Path, size: int) -> None:
        if row.nbytes >= 0 and size != row.nbytes:
            what = "is empty (0 bytes)" if size == 0 else f"is {size} bytes"
            raise DamagedFeatureError(
                file, f"{what}, the manifest recorded {row.nbytes} (truncated or overwritten)"
            )

    def _check_header(
        self, row: StoreRow, file: Path, header: tuple[tuple[int, ...], np.dtype, int], size: int
    ) -> None:
        shape, dtype, offset = header
        recorded = np.dtype(row.dtype or self.config.dtype)
        if shape != (row.num_steps, row.dim) or dtype != recorded:
            raise DamagedFeatureError(
                file, f"holds {shape} {dtype}, the manifest recorded "
                f"({row.num_steps}, {row.dim}) {recorded}",
            )  # fmt: skip
        needed = offset + int(np.prod(shape)) * dtype.itemsize
        if size != needed:  # rows without a recorded size: the header says what it should be
            raise DamagedFeatureError(file, f"is {size} bytes, its header needs {needed}")

    def check_row(self, row: StoreRow) -> None:
        """Cheap check of an ``ok`` row's file: size and ``.npy`` header, no data read; a file
        whose size and mtime_ns are those recorded when it was written (schema 4) is the file
        written, and its header is not opened again. Raises :class:`DamagedFeatureError`."""
        try:
            st = os.stat(os.path.join(self.path, row.file))  # no pathlib: once per video
        except FileNotFoundError:
            raise DamagedFeatureError(self.path / row.file, "is missing") from None
        except OSError as exc:
            raise DamagedFeatureError(
                self.path / row.file, f"is not a readable .npy file ({one_line(exc)})"
            ) from None
        if 0 <= row.file_mtime_ns == st.st_mtime_ns and row.nbytes == st.st_size:
            return  # the file as written
        file = self.path / row.file
        self._check_size(row, file, st.st_size)
        try:
            with open(file, "rb") as handle:
                header = _npy_header(handle)
        except FileNotFoundError:
            raise DamagedFeatureError(file, "is missing") from None
        except (OSError, ValueError, EOFError) as exc:
            raise DamagedFeatureError(
                file, f"is not a readable .npy file ({one_line(exc)})"
            ) from None
        self._check_header(row, file, header, st.st_size)

    def load_row(self, row: StoreRow, *, mmap: bool = False) -> np.ndarray:
        """The row's features, checked against the row (see the module docstring)."""
        if row.status != "ok":
            raise FeatureStoreError(f"{row.video_id}: extraction failed ({row.error})")
        file = self.path / row.file
        if mmap:
            self.check_row(row)
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:  # changed since the check
                raise DamagedFeatureError(file, f"is unreadable ({one_line(exc)})") from None
            recorded = np.dtype(row.dtype or self.config.dtype)
            if array.shape != (row.num_steps, row.dim) or array.dtype != recorded:
                raise DamagedFeatureError(  # the check may have trusted the file's stat
                    file, f"holds {array.shape} {array.dtype}, the manifest recorded "
                    f"({row.num_steps}, {row.dim}) {recorded}",
                )  # fmt: skip
            return array
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise DamagedFeatureError(file, "is missing") from None
        except OSError as exc:
            raise DamagedFeatureError(file, f"is unreadable ({one_line(exc)})") from None
        self._check_size(row, file, len(data))
        if row.crc32 >= 0 and zlib.crc32(data) != row.crc32:
            raise DamagedFeatureError(file, "fails its CRC-32 check (changed since extraction)")
        try:
            header = _npy_header(io.BytesIO(data))
        except (ValueError, EOFError) as exc:
            raise DamagedFeatureError(
                file, f"is not a readable .npy file ({one_line(exc)})"
            ) from None
        self._check_header(row, file, header, len(data))
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise DamagedFeatureError(
                file, f"is not a readable .npy file ({one_line(exc)})"
            ) from None
        return array

    def damaged(
        self,
        ids: Collection[str] | None = None,
        rows: dict[str, StoreRow] | None = None,
    ) -> dict[str, DamagedFeatureError]:
        """``ok`` rows (of ``ids``, default all) whose file fails :meth:`check_row`;
        ``rows``: :meth:`latest_rows` when the caller has them already."""
        found = {}
        for vid, row in (rows if rows is not None else self.latest_rows()).items():
            if row.status != "ok" or (ids is not None and vid not in ids):
                continue
            try:
                self.check_row(row)
            except DamagedFeatureError as exc:
                found[vid] = exc
        return found

    def get(self, video_id: str, *, mmap: bool = False) -> np.ndarray:
        """Stored ``(T, D)`` features (store dtype); a missing or failed video raises."""
        row = self.row(video_id)
        if row is None:
            raise FeatureStoreError(f"{self.path}: no features for {video_id!r}")
        return self.load_row(row, mmap=mmap)

    def verify(self) -> list[str]:
        """Problems found: ok rows whose file is missing, unreadable, of the wrong shape, size or
        dtype, or fails its checksum (reads every file)."""
        problems = []
        for row in self.rows("ok"):
            try:
                self.load_row(row)
            except FeatureStoreError as exc:
                problems.append(str(exc))
        return problems

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, {self.counts()})"


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


def _differences(old: StoreConfig, new: StoreConfig) -> str:
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    changed: list[str] = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            changed += [
                f"{key}.{k} ({a[key].get(k)!r} != {b[key].get(k)!r})"
                for k in sorted(set(a[key]) | set(b[key]))
                if a[key].get(k) != b[key].get(k)
            ]
        else:
            changed.append(f"{key} ({a.get(key)!r} != {b.get(key)!r})")
    return ", ".join(changed)
