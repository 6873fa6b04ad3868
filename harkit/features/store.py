"""`FeatureStore`: cached per-video features of one configuration, resumable and shareable.

Layout (one folder per configuration)::

    <store root>/<backbone>-<layer|pooled>-<key>/
        config.json        every field that changes the features (human readable)
        manifest.sqlite    one row per video: id, status ok|failed, steps, dim, file, error, ...
        features/<id>.npy  float16 (default) or float32 array (T, D)

``key`` is a hash of ``config.json``'s fields (backbone, weights tag, layer, stream,
preprocessing, sampling, dtype, format version). A feature file is written to a temp name and
renamed, and only then is its manifest row committed: a kill between the two leaves a file
without a row, which the next run simply writes again; a row never points at a missing or
half-written file. The manifest uses SQLite in WAL mode with a busy timeout, so several
processes (torchrun ranks) can write into one store at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import PositiveInt

from harkit.backbones import get_backbone_spec, weights_tag
from harkit.config import StrictModel
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.errors import HarkitError
from harkit.io import atomic_output, atomic_write_text
from harkit.models.recipe import FeatureSource

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "FeatureStore",
    "FeatureStoreError",
    "StoreConfig",
    "StoreRow",
    "store_config",
]

FEATURE_FORMAT_VERSION = 1
_KEY_CHARS = 16
_BUSY_TIMEOUT_MS = 120_000
StoreDtype = Literal["float16", "float32"]


class FeatureStoreError(HarkitError):
    """A store is missing, belongs to another configuration, or lacks a video."""


class StoreConfig(StrictModel):
    """Everything that changes the stored features; its hash names the store folder."""

    backbone: str
    weights: str
    """Weights tag: ``none``, ``imagenet``, ``kinetics`` or ``file:<sha256 prefix>``."""
    layer: str | None = None
    stream: Literal["rgb", "flow"] = "rgb"
    kind: Literal["frame", "segment"]
    feature_dim: PositiveInt
    input_size: PositiveInt
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
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:_KEY_CHARS]

    def folder_name(self) -> str:
        layer = (self.layer or "pooled").replace("/", "_")
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
        dim = spec.layers[source.layer]
    return StoreConfig(
        backbone=spec.name,
        weights=weights_tag(source.weights),
        layer=source.layer,
        stream=source.stream,
        kind=spec.kind,
        feature_dim=dim,
        input_size=transform.crop_size or spec.input_size,
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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id  TEXT PRIMARY KEY,
    status    TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    num_steps INTEGER NOT NULL DEFAULT 0,
    dim       INTEGER NOT NULL DEFAULT 0,
    file      TEXT NOT NULL DEFAULT '',
    error     TEXT NOT NULL DEFAULT '',
    path      TEXT NOT NULL DEFAULT '',
    created   REAL NOT NULL,
    updated   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS videos_path ON videos (path);
"""


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
        stamp = self.path / self.CONFIG
        if stamp.is_file():
            try:
                stored = StoreConfig.model_validate(json.loads(stamp.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise FeatureStoreError(f"{stamp}: unreadable store config ({exc})") from exc
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
        self._connection().executescript(_SCHEMA)  # idempotent; runs in its own transaction

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

    def _connection(self) -> sqlite3.Connection:
        # a connection must not cross fork(): reopen in each process
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path / self.MANIFEST, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _db(self) -> _Transaction:
        return _Transaction(self._connection())

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers / spawn: no live handle
        return {**self.__dict__, "_conn": None, "_pid": -1}

    def file_for(self, video_id: str) -> Path:
        return self.path / self.FEATURES / f"{_check_id(video_id)}.npy"

    def put(
        self, video_id: str, features: np.ndarray | torch.Tensor, *, path: str | Path = ""
    ) -> Path:
        """Store ``(T, D)`` features of ``video_id``: file written atomically, then the row."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().float().numpy()
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise FeatureStoreError(
                f"{video_id}: features must be (T, {self.config.feature_dim}), got {features.shape}"
            )
        if not np.isfinite(features).all():
            raise FeatureStoreError(f"{video_id}: features contain NaN or inf")
        target = self.file_for(video_id)
        with atomic_output(target, suffix=".npy") as tmp:
            np.save(tmp, features.astype(self.dtype, copy=False))
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO videos VALUES (?, 'ok', ?, ?, ?, '', ?, ?, ?) "
                "ON CONFLICT(video_id) DO UPDATE SET status='ok', num_steps=excluded.num_steps, "
                "dim=excluded.dim, file=excluded.file, error='', path=excluded.path, "
                "updated=excluded.updated",
                (
                    _check_id(video_id), features.shape[0], features.shape[1],
                    target.relative_to(self.path).as_posix(), str(path), now, now,
                ),
            )  # fmt: skip
        return target

    def put_failed(self, video_id: str, error: str, *, path: str | Path = "") -> None:
        """Record that ``video_id`` could not be processed (its old file, if any, is kept)."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO videos VALUES (?, 'failed', 0, 0, '', ?, ?, ?, ?) "
                "ON CONFLICT(video_id) DO UPDATE SET status='failed', num_steps=0, dim=0, "
                "file='', error=excluded.error, path=excluded.path, updated=excluded.updated",
                (_check_id(video_id), error, str(path), now, now),
            )

    def row(self, video_id: str) -> StoreRow | None:
        cur = self._connection().execute(
            "SELECT * FROM videos WHERE video_id = ?", (_check_id(video_id),)
        )
        found = cur.fetchone()
        return StoreRow(*found) if found else None

    def find_path(self, path: str | Path) -> StoreRow | None:
        """The row recorded for the video file ``path`` (absolute path at extraction)."""
        cur = self._connection().execute(
            "SELECT * FROM videos WHERE path = ? ORDER BY updated DESC LIMIT 1",
            (os.path.abspath(path),),
        )
        found = cur.fetchone()
        return StoreRow(*found) if found else None

    def rows(self, status: str | None = None) -> Iterator[StoreRow]:
        query, args = "SELECT * FROM videos", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        for found in self._connection().execute(query + " ORDER BY video_id", args).fetchall():
            yield StoreRow(*found)

    def done_ids(self, include_failed: bool = True) -> set[str]:
        """Ids with a row (``ok``, and ``failed`` unless ``include_failed=False``)."""
        query = "SELECT video_id FROM videos"
        if not include_failed:
            query += " WHERE status = 'ok'"
        return {r[0] for r in self._connection().execute(query).fetchall()}

    def counts(self) -> dict[str, int]:
        found = self._connection().execute("SELECT status, COUNT(*) FROM videos GROUP BY status")
        return {"ok": 0, "failed": 0, **dict(found.fetchall())}

    def __len__(self) -> int:
        return sum(self.counts().values())

    def __contains__(self, video_id: object) -> bool:
        return (
            isinstance(video_id, str)
            and (r := self.row(video_id)) is not None
            and (r.status == "ok")
        )

    # -- features ---------------------------------------------------------------------------

    def load_row(self, row: StoreRow, *, mmap: bool = False) -> np.ndarray:
        if row.status != "ok":
            raise FeatureStoreError(f"{row.video_id}: extraction failed ({row.error})")
        try:
            array = np.load(self.path / row.file, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            raise FeatureStoreError(f"{self.path / row.file}: unreadable features ({exc})") from exc
        if array.shape != (row.num_steps, row.dim):
            raise FeatureStoreError(
                f"{self.path / row.file}: shape {array.shape} does not match its manifest row "
                f"({row.num_steps}, {row.dim})"
            )
        return array

    def get(self, video_id: str, *, mmap: bool = False) -> np.ndarray:
        """Stored ``(T, D)`` features (store dtype); a missing or failed video raises."""
        row = self.row(video_id)
        if row is None:
            raise FeatureStoreError(f"{self.path}: no features for {video_id!r}")
        return self.load_row(row, mmap=mmap)

    def verify(self) -> list[str]:
        """Problems found: ok rows whose file is missing, unreadable or of the wrong shape."""
        problems = []
        for row in self.rows("ok"):
            try:
                self.load_row(row, mmap=True)
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
