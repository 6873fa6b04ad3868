"""Tiny ZIP and RAR archives built in memory (nothing in Python writes RAR otherwise)."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path


def _rar_block(htype: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
    head = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data


def make_rar(members: list[tuple[str, bytes, int]]) -> bytes:
    """A RAR 4 archive with stored (uncompressed) members ``(name, data, unix mode)``, as
    the RAR 1.5-4.x technical note lays it out; nothing in Python writes RAR otherwise."""
    out = b"Rar!\x1a\x07\x00" + _rar_block(0x73, 0, b"\x00" * 6)
    for name, data, mode in members:
        raw = name.encode()
        flags = 0x8000 | (0x00E0 if stat.S_ISDIR(mode) else 0)
        # packed size, unpacked size, host OS (3: Unix), CRC32, DOS time, version 2.0,
        # method 0x30 (stored), name length, attributes (the Unix mode)
        fields = (len(data), len(data), 3, zlib.crc32(data), 0x5A210000, 20, 0x30, len(raw), mode)
        body = struct.pack("<IIBIIBBHI", *fields) + raw
        out += _rar_block(0x74, flags, body, data)
    return out + _rar_block(0x7B, 0x4000, b"")


def rar_files(files: dict[str, bytes]) -> bytes:
    folders = sorted({str(Path(n).parent) for n in files} - {"."})
    return make_rar(
        [(d, b"", 0o040755) for d in folders] + [(n, b, 0o100644) for n, b in files.items()]
    )


def make_zip(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()
