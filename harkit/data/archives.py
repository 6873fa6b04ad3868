"""Unpacking downloaded archives for ``harkit data download``: ZIP and RAR, safely.

Archives are hostile input: members with absolute paths, ``..`` or links that leave the
extraction folder are refused before anything is written, total size, member count and
compression ratio are bounded (:class:`ExtractLimits`), and each archive is extracted into
``.partial-<folder>`` and renamed into place only when complete (:func:`extract_into`), so
an interrupted run never leaves a tree that looks complete (the next run deletes the
leftovers and extracts again).

RAR archives (all three benchmarks ship as RAR, HMDB51 as a RAR of per-class RARs) are read
with ``unrar2-cffi``, which bundles RARLab's own UnRAR decoder: no system ``unrar`` needed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harkit.data.fetch import CHUNK, DownloadError, human_size, need_space
from harkit.io import atomic_write_text

__all__ = [
    "MARKER",
    "ExtractBudget",
    "ExtractLimits",
    "UnsafeArchiveError",
    "archive_format",
    "extract_archive",
    "extract_into",
]

#: Written into an extracted folder just before it is renamed into place: the folder is ours
#: and complete.
MARKER = ".harkit-complete"
_RAR_MAGIC = (b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UnsafeArchiveError(DownloadError):
    """An archive member would escape the extraction folder or exceed the bounds."""


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on what one dataset's archives may expand to (the real datasets are far below:
    UCF101 13,320 clips in 6.5 GB, compression ratio about 1 since AVIs are compressed)."""

    max_bytes: int = 64 << 30
    max_members: int = 200_000
    max_ratio: float = 50.0
    """Uncompressed / compressed size of a whole archive (a zip bomb is 1000x and more)."""


@dataclass
class ExtractBudget:
    """What the archives of one dataset have used of their :class:`ExtractLimits` so far
    (shared by the per-class archives of a nested one)."""

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
                f"{archive}: expands past the {human_size(self.limits.max_bytes)} bound; refused"
            )


# ------------------------------------------------------------------------------ members


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


def _check_link(
    archive: Path, rel: PurePosixPath, target: str, hard: bool = False
) -> PurePosixPath:
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


def extract_archive(
    archive: Path,
    dest: Path,
    limits: ExtractLimits | None = None,
    budget: ExtractBudget | None = None,
) -> None:
    """Extract ``archive`` (ZIP or RAR) into the folder ``dest``, refusing hostile members.

    Every member name is checked before anything is written; sizes and counts are bounded by
    ``limits`` (declared sizes first, then the bytes actually written).
    """
    budget = budget or ExtractBudget(limits or ExtractLimits())
    dest.mkdir(parents=True, exist_ok=True)
    if archive_format(archive) == "zip":
        _extract_zip(archive, dest, budget)
    else:
        _extract_rar(archive, dest, budget)


def _check_declared(archive: Path, declared: int, budget: ExtractBudget, dest: Path) -> None:
    limits = budget.limits
    packed = max(archive.stat().st_size, 1)
    if budget.written + declared > limits.max_bytes:
        raise UnsafeArchiveError(
            f"{archive}: declares {human_size(declared)} of content, over the "
            f"{human_size(limits.max_bytes)} bound; refused"
        )
    if declared > 1 << 20 and declared / packed > limits.max_ratio:
        raise UnsafeArchiveError(
            f"{archive}: expands {declared / packed:.0f}x ({human_size(declared)} from "
            f"{human_size(packed)}), over the {limits.max_ratio:g}x bound; refused"
        )
    need_space(dest, declared, f"extracting {archive.name}")


def _extract_zip(archive: Path, dest: Path, budget: ExtractBudget) -> None:
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


def _extract_rar(archive: Path, dest: Path, budget: ExtractBudget) -> None:
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


def _rar_member_to(
    handle, ffi, lib, out, archive: Path, rel: PurePosixPath, budget: ExtractBudget
) -> None:
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
            failure.append(
                UnsafeArchiveError(
                    f"{archive}: member '{rel}' asks for a dictionary over 4 GiB; refused"
                )
            )
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


# ----------------------------------------------------------------- staging and renaming


def extract_into(
    archive: Path,
    final: Path,
    *,
    budget: ExtractBudget | None = None,
    nested: bool = False,
    marker: Mapping[str, object] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Extract ``archive`` into the folder ``final`` through ``.partial-<name>`` beside it,
    renamed into place only when complete, with :data:`MARKER` (holding ``marker``) written
    into it just before. A ``final`` already there is replaced: the caller checks it is ours.

    ``nested``: the archive holds one archive per class (HMDB51), each extracted in turn and
    merged into one tree.
    """
    budget = budget or ExtractBudget(ExtractLimits())
    staging = final.with_name(f".partial-{final.name}")
    if staging.exists():
        log(f"removing the unfinished extraction {staging}")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        log(f"extracting {archive.name} -> {final}")
        extract_archive(archive, staging, budget=budget)
        content = _content_root(staging)
        if nested:
            inner = sorted(
                p
                for p in content.iterdir()
                if p.is_file() and not p.is_symlink() and p.suffix.lower() in (".rar", ".zip")
            )
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
        atomic_write_text(content / MARKER, json.dumps(dict(marker or {}), indent=1) + "\n")
        if final.exists():  # a tree of ours whose state was lost (checked by the caller)
            shutil.rmtree(final)
        os.replace(content, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
