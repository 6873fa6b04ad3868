"""`FeatureStore`: cached per-video features of one configuration, resumable and shareable.

Layout (one folder per configuration)::

    <store root>/<backbone>-<layer|pooled>-<key>/
        config.json        every field that changes the features (human readable)
        manifest.sqlite    one row per video: id, status ok|failed, steps, dim, file, error,
                           and the file's size, dtype and CRC-32 (manifest schema 2), and
                           the source video's size and mtime_ns at extraction (schema 3)
        features/<id>.npy  float16 (default) or float32 array (T, D)

``key`` is a hash of ``config.json``'s fields (backbone, weights tag, layer, stream,
preprocessing, sampling, dtype, format version). A feature file is written to a temp name and
renamed, and only then is its manifest row committed: a kill between the two leaves a file
without a row, which the next run simply writes again; a row never points at a missing or
half-written file. The manifest uses SQLite in WAL mode with a busy timeout, so several
processes (torchrun ranks) can write into one store at once.

Every read checks the file against its row, so a truncated, emptied or overwritten file is a
:class:`DamagedFeatureError` naming the file, never a stray ``EOFError``: memory-mapped reads
and :meth:`FeatureStore.damaged` (which ``extract`` runs to redo such files) check the size and
the ``.npy`` header; full reads (training) also the CRC-32. Stores written before schema 2 are
upgraded in place; their old rows, having no recorded size, are checked against the size
their header implies.

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
    "source_stamp",
    "store_config",
]

FEATURE_FORMAT_VERSION = 1
MANIFEST_VERSION = 3
"""``PRAGMA user_version`` of the manifest: 2 added nbytes/dtype/crc32, 3 the source file's
size and mtime_ns (0 = the first layout)."""
_KEY_CHARS = 16
_BUSY_TIMEOUT_MS = 120_000
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

    The input size follows the spec unless ``transform.crop_size`` overrides it (as
    :class:`~harkit.features.extractor.Preprocessor` does); ``flow_method`` only counts for
    flow sources. A local weights file is identified by its content hash.
    """
    spec = get_backbone_spec(source.backbone)
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
        input_size=transform.crop_size or spec.input_size,  # a pair: [height, width]
        mean=spec.mean,
        std=spec.std,
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
    source_mtime_ns INTEGER NOT NULL DEFAULT -1
)"""
# schema 0 -> 2 -> 3: ADD COLUMN appends, so old and new tables end up with one column order
_ADDED_COLUMNS = (
    "nbytes INTEGER NOT NULL DEFAULT -1",
    "dtype TEXT NOT NULL DEFAULT ''",
    "crc32 INTEGER NOT NULL DEFAULT -1",
    "source_size INTEGER NOT NULL DEFAULT -1",
    "source_mtime_ns INTEGER NOT NULL DEFAULT -1",
)
_COLUMNS = ", ".join(StoreRow.__dataclass_fields__)


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
    parts = Path(video_id).parts
    if not video_id or Path(video_id).is_absolute() or ".." in parts:
        raise FeatureStoreError(f"video id must be a relative path inside the store: {video_id!r}")
    return Path(video_id).as_posix()


class FeatureStore:
    """One configuration's features (see the module docstring).

    ``FeatureStore(path, config)`` opens the store at ``path``, creating it when absent; an
    existing store with another configuration raises :class:`FeatureStoreError` naming the
    fields that differ. ``FeatureStore(path)`` opens an existing store as it is.
    ``FeatureStore.at(root, config)`` places the store under ``root`` by its key.
    """

    CONFIG = "config.json"
    MANIFEST = "manifest.sqlite"
    FEATURES = "features"

    def __init__(self, path: str | os.PathLike[str], config: StoreConfig | None = None) -> None:
        self.path = Path(path)
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
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._prepare_manifest()

    @classmethod
    def at(cls, root: str | os.PathLike[str], config: StoreConfig) -> FeatureStore:
        return cls(Path(root) / config.folder_name(), config)

    @property
    def key(self) -> str:
        return self.config.key()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.dtype)

    # -- manifest ---------------------------------------------------------------------------

    @contextmanager
    def _sqlite(self) -> Iterator[None]:
        """SQLite errors -> one :class:`FeatureStoreError` line naming the manifest."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            manifest = self.path / self.MANIFEST
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise FeatureStoreError(
                    f"{manifest} stayed locked for {_BUSY_TIMEOUT_MS // 1000} s ({exc}); "
                    "another process is writing it: let it finish and re-run"
                ) from None
            raise FeatureStoreError(
                f"{manifest} is not a readable SQLite database ({one_line(exc)}); delete the "
                f"folder {self.path} to re-extract"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        # a connection must not cross fork(): reopen in each process
        if self._conn is None or self._pid != os.getpid():
            with self._sqlite():
                conn = sqlite3.connect(
                    self.path / self.MANIFEST, timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                )  # fmt: skip
                try:
                    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = NORMAL")
                except BaseException:
                    conn.close()
                    raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._sqlite():
            return self._connection().execute(sql, args).fetchall()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._sqlite(), _Transaction(self._connection()) as db:
            yield db

    def _layout(self) -> tuple[int, list[str]]:
        version = self._query("PRAGMA user_version")[0][0]
        return version, [r[1] for r in self._query("PRAGMA table_info(videos)")]

    def _prepare_manifest(self) -> None:
        """Create the table, or upgrade an older manifest in place (once, under the lock)."""
        version, columns = self._layout()
        if version == MANIFEST_VERSION and columns:
            pass
        elif version > MANIFEST_VERSION:
            raise FeatureStoreError(
                f"{self.path / self.MANIFEST} was written by a newer harkit (manifest schema "
                f"{version}, this one reads up to {MANIFEST_VERSION}); upgrade harkit, or delete "
                f"the folder {self.path} to re-extract"
            )
        else:
            with self._db() as db:  # another process may have done it meanwhile: look again
                version, columns = self._layout()
                if not columns:
                    db.execute(_TABLE)
                elif version < MANIFEST_VERSION:
                    for column in _ADDED_COLUMNS:
                        if column.split()[0] not in columns:
                            db.execute(f"ALTER TABLE videos ADD COLUMN {column}")
                db.execute("CREATE INDEX IF NOT EXISTS videos_path ON videos (path)")
                db.execute(f"PRAGMA user_version = {MANIFEST_VERSION}")
            version, columns = self._layout()
        if columns != list(StoreRow.__dataclass_fields__):
            raise FeatureStoreError(
                f"{self.path / self.MANIFEST} has an unexpected layout (columns: "
                f"{', '.join(columns)}); delete the folder {self.path} to re-extract"
            )

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers / spawn: no live handle
        return {**self.__dict__, "_conn": None, "_pid": -1}

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
        size, mtime = _stamp_or_unknown(source, path)
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO videos (video_id, status, num_steps, dim, file, error, path, "
                "created, updated, nbytes, dtype, crc32, source_size, source_mtime_ns) "
                "VALUES (?, 'ok', ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(video_id) DO UPDATE SET status='ok', num_steps=excluded.num_steps, "
                "dim=excluded.dim, file=excluded.file, error='', path=excluded.path, "
                "updated=excluded.updated, nbytes=excluded.nbytes, dtype=excluded.dtype, "
                "crc32=excluded.crc32, source_size=excluded.source_size, "
                "source_mtime_ns=excluded.source_mtime_ns",
                (
                    _check_id(video_id), features.shape[0], features.shape[1],
                    target.relative_to(self.path).as_posix(), str(path), now, now,
                    len(written), self.config.dtype, zlib.crc32(written), size, mtime,
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
        with self._db() as db:
            db.execute(
                "INSERT INTO videos (video_id, status, num_steps, dim, file, error, path, "
                "created, updated, source_size, source_mtime_ns) "
                "VALUES (?, 'failed', 0, 0, '', ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(video_id) DO UPDATE SET status='failed', num_steps=0, dim=0, "
                "file='', error=excluded.error, path=excluded.path, updated=excluded.updated, "
                "nbytes=-1, dtype='', crc32=-1, source_size=excluded.source_size, "
                "source_mtime_ns=excluded.source_mtime_ns",
                (_check_id(video_id), error, str(path), now, now, size, mtime),
            )

    def row(self, video_id: str) -> StoreRow | None:
        found = self._query(
            f"SELECT {_COLUMNS} FROM videos WHERE video_id = ?", (_check_id(video_id),)
        )
        return StoreRow(*found[0]) if found else None

    def find_path(self, path: str | Path) -> StoreRow | None:
        """The row recorded for the video file ``path`` (absolute path at extraction)."""
        found = self._query(
            f"SELECT {_COLUMNS} FROM videos WHERE path = ? ORDER BY updated DESC LIMIT 1",
            (os.path.abspath(path),),
        )
        return StoreRow(*found[0]) if found else None

    def rows(self, status: str | None = None) -> Iterator[StoreRow]:
        query, args = f"SELECT {_COLUMNS} FROM videos", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        for found in self._query(query + " ORDER BY video_id", args):
            yield StoreRow(*found)

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Ids with a row (``ok``, and ``failed`` unless ``include_failed=False``)."""
        query = "SELECT video_id FROM videos"
        if not include_failed:
            query += " WHERE status = 'ok'"
        return {r[0] for r in self._query(query)}

    def changed(self, stamps: dict[str, SourceStamp | None]) -> set[str]:
        """Ids of ``stamps`` (id -> the video's current :func:`source_stamp`) whose row, ok or
        failed, was made from another file (:meth:`StoreRow.matches` is false)."""
        found = set()
        for row in self.rows():
            if row.video_id in stamps and not row.matches(stamps[row.video_id]):
                found.add(row.video_id)
        return found

    def counts(self) -> dict[str, int]:
        found = self._query("SELECT status, COUNT(*) FROM videos GROUP BY status")
        return {"ok": 0, "failed": 0, **dict(found)}

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
        """Cheap check of an ``ok`` row's file: size and ``.npy`` header, no data read.
        Raises :class:`DamagedFeatureError`."""
        file = self.path / row.file
        try:
            size = file.stat().st_size
            self._check_size(row, file, size)
            with open(file, "rb") as handle:
                header = _npy_header(handle)
        except FileNotFoundError:
            raise DamagedFeatureError(file, "is missing") from None
        except (OSError, ValueError, EOFError) as exc:
            raise DamagedFeatureError(
                file, f"is not a readable .npy file ({one_line(exc)})"
            ) from None
        self._check_header(row, file, header, size)

    def load_row(self, row: StoreRow, *, mmap: bool = False) -> np.ndarray:
        """The row's features, checked against the row (see the module docstring)."""
        if row.status != "ok":
            raise FeatureStoreError(f"{row.video_id}: extraction failed ({row.error})")
        file = self.path / row.file
        if mmap:
            self.check_row(row)
            try:
                return np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:  # changed since the check
                raise DamagedFeatureError(file, f"is unreadable ({one_line(exc)})") from None
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

    def damaged(self, ids: Collection[str] | None = None) -> dict[str, DamagedFeatureError]:
        """``ok`` rows (of ``ids``, default all) whose file fails :meth:`check_row`."""
        found = {}
        for row in self.rows("ok"):
            if ids is not None and row.video_id not in ids:
                continue
            try:
                self.check_row(row)
            except DamagedFeatureError as exc:
                found[row.video_id] = exc
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
