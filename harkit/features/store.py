"""`FeatureStore`: cached per-video features of one configuration, resumable and shareable.

Layout (one folder per configuration)::

    <store root>/<backbone>-<layer|pooled>-<key>/
        config.json        every field that changes the features (:mod:`harkit.features.config`)
        manifest.sqlite    one row per video: id, status ok|failed, steps, dim, file, error,
                           and the file's size, dtype and CRC-32 (manifest schema 2), the
                           source video's size and mtime_ns at extraction (schema 3) and the
                           feature file's mtime_ns as written (schema 4)
        manifest-rank<k>-of-<n>.sqlite
                           the same, written by rank k of an n-rank extraction only
                           (:mod:`harkit.features.manifest`)
        features/<id>.npy  float16 (default) or float32 array (T, D)

A feature file is written to a temp name and renamed, and only then is its manifest row
committed: a kill between the two leaves a file without a row, which the next run simply
writes again; a row never points at a missing or half-written file.

Every read checks the file against its row, so a truncated, emptied or overwritten file is a
:class:`DamagedFeatureError` naming the file, never a stray ``EOFError``: memory-mapped reads
and :meth:`FeatureStore.damaged` (which ``extract`` runs to redo such files) check the size and
the ``.npy`` header (for a file whose size and mtime_ns are those its row recorded when it was
written, schema 4, the size alone: it is the file written, and no header is opened again);
full reads (training) also the CRC-32. Stores written before schema 2 are upgraded in place;
their old rows, having no recorded size, are checked against the size their header implies.

Ids are paths relative to a dataset root, so another dataset with the same layout has the same
ids: a row counts only for a video whose size *and* mtime_ns equal the recorded ones
(:meth:`StoreRow.matches`). The path is not compared, so a moved or copied-with-times
(``cp -p``, ``rsync -a``) dataset is still reused. Rows written before schema 3 (nothing
recorded) match any file; a video that cannot be stat'ed (deleted after extraction) matches
any row.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from harkit.data.jobs import one_line
from harkit.features.config import StoreConfig, config_differences
from harkit.features.errors import DamagedFeatureError, FeatureStoreError
from harkit.features.manifest import Manifests, SourceStamp, StoreRow
from harkit.io import atomic_output, atomic_write_text

__all__ = ["FeatureStore"]


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


def _check_id(video_id: str) -> str:
    if os.sep == "/" and all(p not in ("", ".", "..") for p in video_id.split("/")):
        return video_id  # already a clean relative POSIX path (no pathlib: once per row)
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

    ``shard=(rank, world_size)`` (``world_size > 1``) makes this process rank ``rank``: it
    writes only ``manifest-rank<rank>-of-<world_size>.sqlite`` and reads its own shard, the
    single-process manifest and shards of other world sizes, never a sibling rank's shard.
    Without it the store writes ``manifest.sqlite`` and reads every manifest as one.
    """

    CONFIG = "config.json"
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
                    + config_differences(stored, config)
                )
            self.config = stored
        elif config is None:
            raise FeatureStoreError(f"{self.path} is not a feature store (no {self.CONFIG})")
        else:
            self.config = config
            (self.path / self.FEATURES).mkdir(parents=True, exist_ok=True)
            atomic_write_text(stamp, json.dumps(config.model_dump(mode="json"), indent=1) + "\n")
        self._manifests = Manifests(self.path, rank, world_size)

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
        return self._manifests.writer_path

    def manifests(self) -> list[Path]:
        """The manifest files this process reads (its own first)."""
        return self._manifests.paths()

    def flush(self) -> None:
        """Commit the rows :meth:`batched` holds back (one transaction)."""
        self._manifests.flush()

    @contextmanager
    def batched(self, max_rows: int = 256, max_seconds: float = 1.0) -> Iterator[FeatureStore]:
        """Group commits: rows written inside are committed together, at the latest once
        ``max_rows`` wait or the first has waited ``max_seconds`` (checked on each write), and
        on leaving. A committed row's file is on disk, as without batching; a process killed
        meanwhile loses the rows not yet committed, and the next run extracts those videos
        again (their files are rewritten). Reads through this object see every row."""
        with self._manifests.batched(max_rows, max_seconds):
            yield self

    def close(self) -> None:
        self._manifests.close()

    def latest_rows(self) -> dict[str, StoreRow]:
        """Every video's row (where manifests overlap, the one that counts). One read of each
        manifest: what ``extract`` decides from."""
        return self._manifests.latest_rows()

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
        self._manifests.record_ok(
            _check_id(video_id),
            features.shape,
            target.relative_to(self.path).as_posix(),
            path=path,
            source=source,
            nbytes=len(written),
            dtype=self.config.dtype,
            crc32=zlib.crc32(written),
            file_mtime_ns=file_mtime,
        )
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
        self._manifests.record_failed(_check_id(video_id), error, path=path, source=source)

    def row(self, video_id: str) -> StoreRow | None:
        return self._manifests.row_for_id(_check_id(video_id))

    def find_path(self, path: str | Path) -> StoreRow | None:
        """The row recorded for the video file ``path`` (absolute path at extraction)."""
        return self._manifests.row_for_path(os.path.abspath(path))

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
            vid
            for vid, row in self.latest_rows().items()
            if vid in stamps and not row.matches(stamps[vid])
        }

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
                file,
                f"holds {shape} {dtype}, the manifest recorded "
                f"({row.num_steps}, {row.dim}) {recorded}",
            )
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
                    file,
                    f"holds {array.shape} {array.dtype}, the manifest recorded "
                    f"({row.num_steps}, {row.dim}) {recorded}",
                )
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
