"""``harkit data download``: fetch UCF101, HMDB51 or UCF50 from their official sources,
verify, and extract them into the layout the ``ucf101`` / ``hmdb51`` / ``ucf50`` kinds read.

Downloads resume (HTTP ``Range`` on a ``<file>.part`` renamed only when complete) and are
checked against the expected size and checksum. The dataset owners publish no checksums;
the MD5s below are the values the community checks against (quoted where noted). Where none
is known, the SHA-256 of the first download is recorded in ``ROOT/harkit-download.json``
and every later use of the file (a re-run, ``--from``) is checked against it.

Archives are hostile input: members with absolute paths, ``..`` or links that leave the
extraction folder are refused before anything is written, total size, member count and
compression ratio are bounded, and each part is extracted into ``ROOT/.partial-<part>`` and
renamed into place only when complete, so an interrupted run never leaves a tree that looks
complete (the next run deletes the leftovers and extracts again).

RAR archives (all three benchmarks ship as RAR, HMDB51 as a RAR of per-class RARs) are read
with ``unrar2-cffi``, which bundles RARLab's own UnRAR decoder: no system ``unrar`` needed.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import filelock

from harkit.errors import HarkitError
from harkit.io import atomic_write_text

__all__ = [
    "SOURCES",
    "DatasetSource",
    "DownloadError",
    "DownloadResult",
    "ExtractLimits",
    "RemoteFile",
    "UnsafeArchiveError",
    "download_dataset",
    "extract_archive",
    "fetch",
]

CHUNK = 1 << 20
STATE_FILE = "harkit-download.json"
#: Written into an extracted folder just before it is renamed into place: the folder is ours
#: and complete.
MARKER = ".harkit-complete"
DOWNLOADS = "downloads"
_RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class DownloadError(HarkitError):
    """A file cannot be fetched, is not what was expected, or an archive cannot be read."""


class UnsafeArchiveError(DownloadError):
    """An archive member would escape the extraction folder or exceed the bounds."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from and what it must be."""

    name: str
    """File name on disk (and what ``--from DIR`` looks for)."""
    urls: tuple[str, ...]
    """The documented source first, then known mirrors of the same file."""
    target: str
    """Folder under ROOT the archive's content ends in."""
    md5: str | None = None
    size: int | None = None
    nested: bool = False
    """The archive holds one archive per class (HMDB51), each extracted in turn."""


@dataclass(frozen=True)
class DatasetSource:
    name: str
    kind: str
    videos: RemoteFile
    splits: RemoteFile | None = None
    page: str = ""

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        return (self.videos,) if self.splits is None else (self.videos, self.splits)


# The documented sources (dataset pages: https://www.crcv.ucf.edu/data/UCF101.php,
# https://www.crcv.ucf.edu/data/UCF50.php, https://serre-lab.clps.brown.edu/resource/
# hmdb-a-large-human-motion-database/). Neither lab publishes checksums. The UCF101 MD5s are
# the values public download code verifies these exact URLs against (torchvision-style
# ``download_and_extract_archive(..., md5=...)``); the other files get their SHA-256 recorded
# on first download.
SOURCES: dict[str, DatasetSource] = {
    "ucf101": DatasetSource(
        "ucf101", "ucf101",
        RemoteFile(
            "UCF101.rar",
            ("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
             "https://www.crcv.ucf.edu/datasets/human-actions/ucf101/UCF101.rar"),
            target="UCF-101", md5="6463accf4bbc20fa6418ab7f159e6149",
        ),
        RemoteFile(
            "UCF101TrainTestSplits-RecognitionTask.zip",
            ("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
             "https://www.crcv.ucf.edu/wp-content/uploads/2019/03/"
             "UCF101TrainTestSplits-RecognitionTask.zip"),
            target="ucfTrainTestlist", md5="4426308e815a5108ba976f4a2bb47c5e",
        ),
        page="https://www.crcv.ucf.edu/data/UCF101.php",
    ),
    "hmdb51": DatasetSource(
        "hmdb51", "hmdb51",
        RemoteFile(
            "hmdb51_org.rar",
            ("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",),
            target="hmdb51_org", nested=True,
        ),
        RemoteFile(
            "test_train_splits.rar",
            ("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",),
            target="testTrainMulti_7030_splits",
        ),
        page="https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/",
    ),
    "ucf50": DatasetSource(
        "ucf50", "ucf50",
        RemoteFile(
            "UCF50.rar", ("https://www.crcv.ucf.edu/data/UCF50.rar",),
            target="UCF50", size=3_233_554_570,  # the size public resume scripts wait for
        ),
        page="https://www.crcv.ucf.edu/data/UCF50.php",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on what one dataset's archives may expand to (the real datasets are far below:
    UCF101 13,320 clips in 6.5 GB, compression ratio about 1 since AVIs are compressed)."""

    max_bytes: int = 64 << 30
    max_members: int = 200_000
    max_ratio: float = 50.0
    """Uncompressed / compressed size of a whole archive (a zip bomb is 1000x and more)."""


@dataclass
class _Budget:
    limits: ExtractLimits
    written: int = 0
    members: int = 0

    def add_member(self, archive: Path, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise UnsafeArchiveError(
                f"{archive}: more than {self.limits.max_members} members (at '{name}'); refused"
            )

    def add_bytes(self, archive: Path, n: int) -> None:
        self.written += n
        if self.written > self.limits.max_bytes:
            raise UnsafeArchiveError(
                f"{archive}: expands past the {_human(self.limits.max_bytes)} bound; refused"
            )


@dataclass
class DownloadResult:
    """Where the dataset ended up and how to read it."""

    name: str
    kind: str
    root: Path
    videos: Path
    annotations: Path | None
    files: dict[str, dict[str, object]] = field(default_factory=dict)


# --------------------------------------------------------------------------------- helpers


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _hashes(path: Path, progress: bool) -> tuple[str, str]:
    """MD5 and SHA-256 of ``path`` in one pass."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    bar = _bar(path.stat().st_size, 0, f"verify {path.name}", progress)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            bar.update(len(chunk))
    bar.close()
    return md5.hexdigest(), sha.hexdigest()


def _bar(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=not enabled, file=sys.stderr, leave=True)  # fmt: skip


def _read_state(root: Path) -> dict:
    path = root / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{path}: unreadable ({exc}); delete it to start over") from None
    files = state.get("files", {}) if isinstance(state, dict) else None
    if (
        not isinstance(files, dict)
        or not all(isinstance(v, dict) for v in files.values())
        or not isinstance(state.get("dataset", ""), str)
    ):
        raise DownloadError(
            f"{path}: not the state harkit writes (a JSON object with 'dataset' and an object "
            "of 'files'); delete it to start over"
        )
    return state


def _write_state(root: Path, state: dict) -> None:
    atomic_write_text(root / STATE_FILE, json.dumps(state, indent=1, sort_keys=True) + "\n")


def _offline_reason(exc: BaseException) -> str | None:
    """Why the network could not be reached, or None when the server answered."""
    if isinstance(exc, urllib.error.HTTPError):
        return None
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, OSError)):
        return str(exc) or type(exc).__name__
    return None


# -------------------------------------------------------------------------------- download


def fetch(
    urls: tuple[str, ...] | list[str],
    dest: Path,
    *,
    size: int | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download the first of ``urls`` that answers into ``dest``, resuming ``dest.part``.

    Each URL is tried ``1 + retries`` times; a cut connection resumes from where it stopped
    (``Range: bytes=N-``). ``dest`` appears only when the whole file is there (and is
    ``size`` bytes long, when given). Raises :class:`DownloadError`.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[tuple[str, str]] = []
    for url in urls:
        for attempt in range(1 + retries):
            try:
                _fetch_once(url, part, size=size, timeout=timeout, progress=progress)
            except _Retry as exc:
                errors.append((url, str(exc)))
                if attempt < retries:
                    time.sleep(min(2.0**attempt, 30.0) * 0.5)
                continue
            except urllib.error.HTTPError as exc:
                errors.append((url, f"HTTP {exc.code} {exc.reason}"))
                break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = _offline_reason(exc) or str(exc)
                errors.append((url, reason))
                if isinstance(exc, urllib.error.URLError) and attempt < retries:
                    time.sleep(min(2.0**attempt, 30.0) * 0.5)
                    continue
                break
            os.replace(part, dest)
            return dest
    kept = part.stat().st_size if part.exists() else 0
    resume = f"; {_human(kept)} kept in {part}, run again to resume" if kept else ""
    last = {url: f"{url}: {why}" for url, why in errors}  # the last reason for each URL
    raise DownloadError(f"{dest.name}: download failed ({'; '.join(last.values())}){resume}")


class _Retry(Exception):
    """A transfer that stopped early; the .part file keeps what arrived."""


MAX_UNKNOWN_SIZE = 32 * 2**30
"""Bytes a download of unknown size may write (UCF101's archive, the largest, is 6.5 GB)."""


def _fetch_once(url: str, part: Path, *, size: int | None, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "harkit-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and (size is None or have == size):
            return  # the .part is already whole
        raise
    with response:
        total = _total_size(response, have)
        if response.status == 200 and have:
            have = 0  # the server ignored the Range: start over
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"{url}: the server offers {total} bytes, {size} expected; the file changed "
                "upstream or this is not the official archive"
            )
        expected = total if total is not None else size
        if expected is not None:
            _need_space(part.parent, expected - have, part.name[: -len(".part")])
        bar = _bar(expected, have, part.name[: -len(".part")], progress)
        received = have
        limit = expected if expected is not None else MAX_UNKNOWN_SIZE
        try:
            with part.open("ab" if have else "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (http.client.IncompleteRead, OSError) as exc:
                        raise _Retry(f"connection lost after {received} bytes ({exc})") from None
                    if not chunk:
                        break
                    if received + len(chunk) > limit:
                        out.close()
                        part.unlink()  # not worth resuming
                        raise DownloadError(
                            f"{url}: the server sent more than "
                            + (f"the {expected} bytes it announced" if expected is not None
                               else f"{_human(MAX_UNKNOWN_SIZE)} without saying its size")
                            + "; not the official archive, stopped"
                        )  # fmt: skip
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        finally:
            bar.close()
    if expected is not None and received < expected:
        raise _Retry(f"connection closed after {received} of {expected} bytes")


def _total_size(response: http.client.HTTPResponse, have: int) -> int | None:
    """The whole file's size from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        unit, _, spec = content_range.partition(" ")
        span, _, total = spec.partition("/")
        start = span.partition("-")[0]
        if unit != "bytes" or not start.isdigit() or int(start) != have:
            raise _Retry(f"unexpected Content-Range {content_range!r} for bytes={have}-")
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


# ------------------------------------------------------------------------------ extraction


def _member_path(archive: Path, name: str) -> PurePosixPath:
    """The safe relative path of a member name, or :class:`UnsafeArchiveError`."""
    text = name.replace("\\", "/")
    path = PurePosixPath(text)
    if not text or "\x00" in text:
        raise UnsafeArchiveError(f"{archive}: member with an empty or NUL name; refused")
    if path.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member '{name}' has an absolute path; refused")
    if ".." in path.parts:
        raise UnsafeArchiveError(
            f"{archive}: member '{name}' leaves the extraction folder; refused"
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeArchiveError(f"{archive}: member '{name}' names no file; refused")
    return PurePosixPath(*parts)


def _check_link(archive: Path, rel: PurePosixPath, target: str,
                hard: bool = False) -> PurePosixPath:  # fmt: skip
    """A link at ``rel`` pointing to ``target`` must stay inside the extraction folder.
    A symlink's target is relative to the link's folder, a hard link's to the archive root."""
    text = target.replace("\\", "/")
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: link '{rel}' points to '{target}', outside the extraction folder; refused"
        )
    base = PurePosixPath() if hard else rel.parent
    depth = len(base.parts)
    for part in PurePosixPath(text).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise UnsafeArchiveError(
                f"{archive}: link '{rel}' points to '{target}', outside the extraction "
                "folder; refused"
            )
    return PurePosixPath(os.path.normpath((base / text).as_posix()))


def _inside(base: Path, path: Path) -> bool:
    base_real = os.path.realpath(base)
    real = os.path.realpath(path)
    return real == base_real or real.startswith(base_real + os.sep)


def _new_parent(base: Path, rel: PurePosixPath, archive: Path) -> Path:
    """``base/rel`` with its folders made, refused when they resolve outside ``base``
    (checked before and after creating them)."""
    path = base.joinpath(*rel.parts)
    for _ in range(2):
        if not _inside(base, path.parent):
            raise UnsafeArchiveError(
                f"{archive}: member '{rel}' would be written through a link; refused"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _open_new(base: Path, rel: PurePosixPath, archive: Path):
    """Create ``base/rel`` for writing; its folder must resolve inside ``base`` (a link
    extracted earlier cannot redirect it) and the file itself must not exist yet."""
    path = _new_parent(base, rel, archive)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeArchiveError(f"{archive}: member '{rel}' is a link; refused") from None
        raise
    return os.fdopen(fd, "wb")


def _make_link(base: Path, rel: PurePosixPath, target: str, archive: Path, hard: bool) -> None:
    resolved = _check_link(archive, rel, target, hard)
    path = _new_parent(base, rel, archive)
    if hard:
        source = base.joinpath(*resolved.parts)
        if not source.is_file() or source.is_symlink() or not _inside(base, source):
            raise UnsafeArchiveError(
                f"{archive}: hard link '{rel}' to '{target}', which is not a file extracted "
                "before it; refused"
            )
        os.link(source, path)
    else:
        os.symlink(target.replace("\\", "/"), path)
        if not _inside(base, path):  # lexically inside, but through links extracted before
            path.unlink()
            raise UnsafeArchiveError(
                f"{archive}: link '{rel}' resolves outside the extraction folder; refused"
            )


def archive_format(path: Path) -> str:
    """``zip`` or ``rar`` from the file's first bytes (never from its name)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_RAR_MAGIC):
        return "rar"
    raise DownloadError(f"{path}: not a ZIP or RAR archive (starts with {head[:8]!r})")


def extract_archive(archive: Path, dest: Path, limits: ExtractLimits | None = None,
                    budget: _Budget | None = None) -> None:  # fmt: skip
    """Extract ``archive`` (ZIP or RAR) into the folder ``dest``, refusing hostile members.

    Every member name is checked before anything is written; sizes and counts are bounded by
    ``limits`` (declared sizes first, then the bytes actually written).
    """
    budget = budget or _Budget(limits or ExtractLimits())
    dest.mkdir(parents=True, exist_ok=True)
    if archive_format(archive) == "zip":
        _extract_zip(archive, dest, budget)
    else:
        _extract_rar(archive, dest, budget)


def _need_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{folder}: {what} needs {_human(needed)}, only {_human(free)} free; make room "
            "and run again"
        )


def _check_declared(archive: Path, declared: int, budget: _Budget, dest: Path) -> None:
    limits = budget.limits
    packed = max(archive.stat().st_size, 1)
    if budget.written + declared > limits.max_bytes:
        raise UnsafeArchiveError(
            f"{archive}: declares {_human(declared)} of content, over the "
            f"{_human(limits.max_bytes)} bound; refused"
        )
    if declared > 1 << 20 and declared / packed > limits.max_ratio:
        raise UnsafeArchiveError(
            f"{archive}: expands {declared / packed:.0f}x ({_human(declared)} from "
            f"{_human(packed)}), over the {limits.max_ratio:g}x bound; refused"
        )
    _need_space(dest, declared, f"extracting {archive.name}")


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: unreadable ZIP ({exc})") from None
    with zf:
        infos = zf.infolist()
        plan = []
        for info in infos:  # every name is checked before anything is written
            budget.add_member(archive, info.filename)
            rel = _member_path(archive, info.filename)
            mode = info.external_attr >> 16
            kind = "link" if stat.S_ISLNK(mode) else ("dir" if info.is_dir() else "file")
            if info.flag_bits & 0x1:
                raise DownloadError(f"{archive}: member '{info.filename}' is encrypted")
            target = ""
            if kind == "link":
                if info.file_size > 4096:
                    raise UnsafeArchiveError(
                        f"{archive}: link '{rel}' has a {info.file_size}-byte target; refused"
                    )
                target = zf.read(info).decode("utf-8", "replace")
                _check_link(archive, rel, target)
            plan.append((info, rel, kind, target))
        _check_declared(archive, sum(i.file_size for i in infos), budget, dest)
        for info, rel, kind, target in plan:
            if kind == "dir":
                _new_parent(dest, rel / "_", archive)  # the folder itself, checked
                continue
            if kind == "link":
                _make_link(dest, rel, target, archive, hard=False)
                continue
            try:
                with zf.open(info) as src, _open_new(dest, rel, archive) as out:
                    while chunk := src.read(CHUNK):
                        budget.add_bytes(archive, len(chunk))
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise DownloadError(f"{archive}: member '{rel}' is corrupt ({exc})") from None


def _unrar():
    try:
        from unrar.cffi import unrarlib
        from unrar.cffi._unrarlib import ffi, lib
    except ImportError as exc:
        raise DownloadError(
            f"RAR archives need the 'unrar2-cffi' package ({exc}); install it with "
            "'pip install \"unrar2-cffi>=0.5,<0.6\"' (it bundles the UnRAR decoder)"
        ) from None
    return unrarlib, ffi, lib


_RAR_HOST_UNIX = 3
_ERAR_END_ARCHIVE = 10
_REDIR_HARDLINK, _REDIR_FILECOPY = 4, 5


@dataclass
class _RarMember:
    name: str
    size: int
    is_dir: bool
    link: int  # 0 none, else the RAR redirection type (1-3 symlink/junction, 4-5 hard/copy)
    target: str
    encrypted: bool


def _rar_headers(archive: Path, handle, ffi, lib) -> Iterator[_RarMember]:
    """Headers of an open RAR handle, with the link target buffer unrar fills."""
    while True:
        data = ffi.new("struct RARHeaderDataEx *")
        target = ffi.new("wchar_t[]", 4096)
        data.RedirName = target
        data.RedirNameSize = 4096
        result = lib.RARReadHeaderEx(handle, data)
        if result == _ERAR_END_ARCHIVE:
            return
        if result != lib.C_ERAR_SUCCESS:
            raise DownloadError(f"{archive}: corrupt RAR header (UnRAR error {result})")
        attr = data.FileAttr
        link = data.RedirType
        if not link and data.HostOS == _RAR_HOST_UNIX and stat.S_ISLNK(attr):
            link = 1  # RAR 1.5-4 Unix symlink: the target is the member's data
        yield _RarMember(
            name=ffi.string(data.FileNameW),
            size=data.UnpSize + (data.UnpSizeHigh << 32),
            is_dir=bool(data.Flags & lib.C_RHDF_DIRECTORY),
            link=link,
            target=ffi.string(target),
            encrypted=bool(data.Flags & 0x04),  # RHDF_ENCRYPTED
        )


def _extract_rar(archive: Path, dest: Path, budget: _Budget) -> None:
    unrarlib, ffi, lib = _unrar()
    members: list[_RarMember] = []
    try:
        with unrarlib.RarArchive.open_for_metadata(archive) as rar:  # headers only, no decoding
            for member in _rar_headers(archive, rar.handle, ffi, lib):
                budget.add_member(archive, member.name)
                _member_path(archive, member.name)
                if member.encrypted:
                    raise DownloadError(f"{archive}: member '{member.name}' is encrypted")
                if member.link and not member.target:
                    raise UnsafeArchiveError(
                        f"{archive}: link '{member.name}' whose target cannot be checked "
                        "before extraction; refused"
                    )
                if member.link:
                    hard = member.link in (_REDIR_HARDLINK, _REDIR_FILECOPY)
                    _check_link(archive, _member_path(archive, member.name), member.target, hard)
                lib.RARProcessFileW(rar.handle, lib.C_RAR_SKIP, ffi.NULL, ffi.NULL)
                members.append(member)
    except unrarlib.BadRarFile as exc:
        raise DownloadError(f"{archive}: unreadable RAR ({exc.message})") from None
    _check_declared(archive, sum(m.size for m in members if not m.link), budget, dest)

    try:
        with unrarlib.RarArchive.open_for_processing(archive) as rar:
            for member in _rar_headers(archive, rar.handle, ffi, lib):
                rel = _member_path(archive, member.name)
                if member.is_dir or member.link:
                    lib.RARProcessFileW(rar.handle, lib.C_RAR_SKIP, ffi.NULL, ffi.NULL)
                    if member.is_dir:
                        _new_parent(dest, rel / "_", archive)
                    else:
                        hard = member.link in (_REDIR_HARDLINK, _REDIR_FILECOPY)
                        _make_link(dest, rel, member.target, archive, hard=hard)
                    continue
                with _open_new(dest, rel, archive) as out:
                    _rar_member_to(rar.handle, ffi, lib, out, archive, rel, budget)
    except unrarlib.BadRarFile as exc:
        raise DownloadError(f"{archive}: unreadable RAR ({exc.message})") from None


def _rar_member_to(handle, ffi, lib, out, archive: Path, rel: PurePosixPath,
                   budget: _Budget) -> None:  # fmt: skip
    """Decode the current RAR member into ``out``; aborts (callback -1) past the bound or
    on a password request."""
    failure: list[BaseException] = []

    def callback(msg: int, p1: int, p2: int) -> int:
        if msg == lib.UCM_PROCESSDATA:
            try:
                budget.add_bytes(archive, p2)
                out.write(ffi.buffer(ffi.cast("char *", p1), p2))
            except BaseException as exc:  # re-raised below, once unrar has returned
                failure.append(exc)
                return -1
            return 1
        if msg in (lib.UCM_NEEDPASSWORD, lib.UCM_NEEDPASSWORDW):
            failure.append(DownloadError(f"{archive}: member '{rel}' is encrypted"))
            return -1
        if msg == lib.UCM_LARGEDICT:
            failure.append(UnsafeArchiveError(f"{archive}: member '{rel}' asks for a "
                                              "dictionary over 4 GiB; refused"))  # fmt: skip
            return -1
        return 1

    user_data = ffi.new_handle(callback)
    lib.RARSetCallbackPtr(handle, lib.PyUNRARCALLBACKStub, user_data)
    try:
        result = lib.RARProcessFileW(handle, lib.C_RAR_TEST, ffi.NULL, ffi.NULL)
    finally:
        lib.RARSetCallbackPtr(handle, ffi.NULL, ffi.NULL)
    if failure:
        raise failure[0]
    if result != lib.C_ERAR_SUCCESS:
        raise DownloadError(f"{archive}: member '{rel}' is corrupt (UnRAR error {result})")


def _content_root(folder: Path) -> Path:
    """The folder an archive's content starts in: its single top folder, if it has one."""
    entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


def _extract_part(file: RemoteFile, archive: Path, sha256: str, root: Path, budget: _Budget,
                  log: Callable[[str], None]) -> Path:  # fmt: skip
    """Extract ``archive`` into ``root/file.target`` through ``root/.partial-<target>``."""
    final = root / file.target
    staging = root / f".partial-{file.target}"
    if staging.exists():
        log(f"removing the unfinished extraction {staging}")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        log(f"extracting {archive.name} -> {final}")
        extract_archive(archive, staging, budget=budget)
        content = _content_root(staging)
        if file.nested:
            inner = sorted(p for p in content.iterdir() if p.is_file() and not p.is_symlink()
                           and p.suffix.lower() in (".rar", ".zip"))  # fmt: skip
            if not inner:
                raise DownloadError(f"{archive}: expected one archive per class inside, found none")
            for i, member in enumerate(inner, 1):
                log(f"  [{i}/{len(inner)}] {member.name}")
                into = content / f".inner-{member.stem}"
                extract_archive(member, into, budget=budget)
                # Each per-class archive holds <class>/<videos>; merge that into content/.
                inner_root = _content_root(into)
                name = inner_root.name if inner_root != into else member.stem
                if (content / name).exists():
                    raise DownloadError(f"{member}: class folder '{name}' appears twice")
                os.replace(inner_root, content / name)
                shutil.rmtree(into, ignore_errors=True)
                member.unlink()
        marker = {"archive": file.name, "sha256": sha256, "target": file.target}
        atomic_write_text(content / MARKER, json.dumps(marker, indent=1) + "\n")
        if final.exists():  # a tree of ours whose state was lost (checked by the caller)
            shutil.rmtree(final)
        os.replace(content, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------- dataset


def _by_hand(source: DatasetSource, root: Path) -> str:
    urls = " and ".join(f.urls[0] for f in source.files)
    return (
        f"fetch {urls} by hand (page: {source.page}) and put them in {root / DOWNLOADS} and "
        f"run this again, or in any folder DIR and run "
        f"'harkit data download {source.name} {root} --from DIR'"
    )


def _verify(file: RemoteFile, path: Path, record: dict, progress: bool, owned: bool) -> dict:
    """Size and checksum of ``path`` against the published or recorded values."""
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        fix = "delete it and run again" if owned else "this is not the official file"
        raise DownloadError(f"{path}: {size} bytes, {file.size} expected; {fix}")
    md5, sha = _hashes(path, progress)
    expected_sha = record.get("sha256")
    if file.md5 and md5 != file.md5:
        what = f"{path}: MD5 {md5} differs from the published {file.md5}"
        if not owned:
            raise DownloadError(f"{what}; this is not the official file")
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        raise DownloadError(f"{what}; moved to {bad}, run again to download it anew")
    if expected_sha and sha != expected_sha:
        raise DownloadError(
            f"{path}: SHA-256 {sha} differs from {expected_sha} recorded on "
            f"{record.get('recorded', 'the first download')}; if the file changed upstream, "
            f"delete its entry in {STATE_FILE}"
        )
    entry = {"size": size, "md5": md5, "sha256": sha}
    if file.md5:
        entry["checksum"] = "md5 published in harkit.data.download.SOURCES"
    else:
        entry["checksum"] = "sha256 recorded on first use (no published checksum)"
        entry["recorded"] = record.get("recorded") or datetime.now(timezone.utc).isoformat(
            timespec="seconds"
        )
    return entry


LOCK_FILE = ".harkit-download.lock"


@contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    """Hold ROOT's download lock (an OS lock: a killed download leaves none behind)."""
    lock = filelock.FileLock(root / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise DownloadError(
            f"{root}: another 'harkit data download' is writing this folder; wait for it to "
            "finish or choose another ROOT"
        ) from None
    try:
        yield
    finally:
        lock.release()


def download_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    from_dir: str | os.PathLike[str] | None = None,
    sources: Mapping[str, DatasetSource] | None = None,
    limits: ExtractLimits | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DownloadResult:
    """Fetch (or take from ``from_dir``), verify and extract benchmark ``name`` under ``root``.

    ``sources`` replaces the table of official URLs (:data:`SOURCES`), e.g. to use a mirror.
    Re-running is cheap: finished downloads are verified, not fetched again, and parts
    already extracted are kept.
    """
    table = SOURCES if sources is None else sources
    if name not in table:
        raise DownloadError(f"unknown dataset '{name}'; expected one of {', '.join(table)}")
    source = table[name]
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DownloadError(f"{root}: exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with _root_lock(root):  # two downloads into one ROOT would corrupt each other
        state = _read_state(root)
        if state.get("dataset") not in (None, name):
            raise DownloadError(
                f"{root}: holds '{state['dataset']}' (see {STATE_FILE}); choose another folder"
            )
        state["dataset"] = name
        records: dict = state.setdefault("files", {})
        local = Path(from_dir) if from_dir is not None else None
        if local is not None and not local.is_dir():
            raise DownloadError(f"--from {local}: folder not found")
        budget = _Budget(limits or ExtractLimits())

        finals: dict[str, Path] = {}
        for file in source.files:
            final = root / file.target
            record = records.get(file.name, {})
            if (final / MARKER).is_file():
                log(f"{final}: already extracted")
                records[file.name] = {**record, "extracted": True}
                finals[file.name] = final
                continue
            if final.exists() or final.is_symlink():
                raise DownloadError(
                    f"{final}: exists but was not extracted by harkit (no {MARKER}); move it "
                    "away or choose another ROOT"
                )
            path = _locate(file, root, local, source, retries, timeout, progress, log)
            entry = _verify(file, path, record, progress, owned=local is None)
            records[file.name] = {**record, **entry, "url": file.urls[0], "extracted": False}
            _write_state(root, state)
            finals[file.name] = _extract_part(file, path, entry["sha256"], root, budget, log)
            records[file.name]["extracted"] = True
            _write_state(root, state)

        videos = finals[source.videos.name]
        annotations = finals.get(source.splits.name) if source.splits else None
        return DownloadResult(name, source.kind, root, videos, annotations, records)


def _locate(file: RemoteFile, root: Path, local: Path | None, source: DatasetSource,
            retries: int, timeout: float, progress: bool, log: Callable[[str], None]) -> Path:  # fmt: skip
    """The archive on disk: from ``--from``, an earlier download, or fetched now."""
    if local is not None:
        path = local / file.name
        if not path.is_file():
            raise DownloadError(
                f"--from {local}: {file.name} not found; fetch {file.urls[0]} into that folder"
            )
        log(f"using {path}")
        return path
    path = root / DOWNLOADS / file.name
    if path.is_file():
        log(f"using the earlier download {path}")
        return path
    host = urlsplit(file.urls[0]).netloc
    log(f"downloading {file.name} from {host}")
    try:
        return fetch(file.urls, path, size=file.size, retries=retries, timeout=timeout,
                     progress=progress)  # fmt: skip
    except DownloadError as exc:
        part = path.with_name(path.name + ".part")
        if part.exists() and part.stat().st_size:
            raise  # a partial transfer: running again resumes it
        raise DownloadError(f"{exc}; {_by_hand(source, root)}") from None
