"""Fetching a dataset's files for ``harkit data download``: HTTP downloads that resume, size
and checksum checks, and the download folder's state file and lock.

Downloads resume (HTTP ``Range`` on a ``<file>.part`` renamed only when complete) and are
checked against the expected size and checksum. Where no checksum is published, the SHA-256
of the first download is recorded in ``ROOT/harkit-download.json`` (:data:`STATE_FILE`) and
every later use of the file (a re-run, ``--from``) is checked against it. One download at a
time writes a ROOT (an OS lock, :func:`root_lock`). The archives are unpacked by
:mod:`harkit.data.archives`; :mod:`harkit.data.download` ties both to the datasets.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock

from harkit.errors import HarkitError
from harkit.io import atomic_write_text

__all__ = [
    "CHUNK",
    "LOCK_FILE",
    "MAX_UNKNOWN_SIZE",
    "STATE_FILE",
    "DownloadError",
    "fetch",
    "human_size",
    "need_space",
    "read_state",
    "root_lock",
    "verify_file",
    "write_state",
]

CHUNK = 1 << 20
STATE_FILE = "harkit-download.json"
LOCK_FILE = ".harkit-download.lock"


class DownloadError(HarkitError):
    """A file cannot be fetched, is not what was expected, or an archive cannot be read."""


# --------------------------------------------------------------------------------- helpers


def human_size(n: float) -> str:
    """``n`` bytes for messages: ``512 B``, ``4.0 KiB`` ... ``6.5 GiB``."""
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

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
        file=sys.stderr,
        leave=True,
    )


def need_space(folder: Path, needed: int, what: str) -> None:
    """:class:`DownloadError` unless ``folder``'s disk has ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{folder}: {what} needs {human_size(needed)}, only {human_size(free)} free; make "
            "room and run again"
        )


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
    resume = f"; {human_size(kept)} kept in {part}, run again to resume" if kept else ""
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
            need_space(part.parent, expected - have, part.name[: -len(".part")])
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
                            + (
                                f"the {expected} bytes it announced"
                                if expected is not None
                                else f"{human_size(MAX_UNKNOWN_SIZE)} without saying its size"
                            )
                            + "; not the official archive, stopped"
                        )
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


# --------------------------------------------------------------- checks, state and lock


def verify_file(
    path: Path,
    record: dict,
    *,
    size: int | None = None,
    md5: str | None = None,
    progress: bool = True,
    owned: bool = True,
) -> dict:
    """Check ``path`` against its published ``size`` and ``md5``, or else the SHA-256 in
    ``record`` (its entry in the state file, recorded on first use); return the entry to
    record now. An ``owned`` file (downloaded by harkit, not the user's) whose MD5 is
    wrong is moved aside to ``<name>.bad`` so that the next run downloads it anew."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        fix = "delete it and run again" if owned else "this is not the official file"
        raise DownloadError(f"{path}: {actual} bytes, {size} expected; {fix}")
    got_md5, sha = _hashes(path, progress)
    expected_sha = record.get("sha256")
    if md5 and got_md5 != md5:
        what = f"{path}: MD5 {got_md5} differs from the published {md5}"
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
    entry = {"size": actual, "md5": got_md5, "sha256": sha}
    if md5:
        entry["checksum"] = "md5 published in harkit.data.download.SOURCES"
    else:
        entry["checksum"] = "sha256 recorded on first use (no published checksum)"
        entry["recorded"] = record.get("recorded") or datetime.now(timezone.utc).isoformat(
            timespec="seconds"
        )
    return entry


def read_state(root: Path) -> dict:
    """ROOT's :data:`STATE_FILE` (``{}`` when there is none yet), checked for its shape."""
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


def write_state(root: Path, state: dict) -> None:
    """Replace ROOT's :data:`STATE_FILE` with ``state`` (atomically)."""
    atomic_write_text(root / STATE_FILE, json.dumps(state, indent=1, sort_keys=True) + "\n")


@contextmanager
def root_lock(root: Path) -> Iterator[None]:
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
