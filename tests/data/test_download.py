"""``harkit data download``: resumable, verified downloads from a server the test runs on
127.0.0.1, and extraction of tiny ZIP and RAR archives (honest and hostile) into the layout
the ucf101 / hmdb51 / ucf50 kinds read."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harkit.cli.main import main
from harkit.data.archives import ExtractLimits, UnsafeArchiveError, extract_archive
from harkit.data.datasets import DatasetConfig, load_index
from harkit.data.download import DatasetSource, RemoteFile, download_dataset
from harkit.data.fetch import STATE_FILE, DownloadError
from tests.helpers.archives import make_rar, make_zip, rar_files

# ----------------------------------------------------------------------------- archives

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball"]


def ucf101_archives() -> tuple[bytes, bytes]:
    """UCF101.rar (``UCF-101/<Class>/v_*.avi``) and the split ZIP (``ucfTrainTestlist/``)."""
    videos, train, test = {}, [], []
    for cid, cls in enumerate(UCF_CLASSES, 1):
        for g in (1, 2):
            name = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            videos[f"UCF-101/{name}"] = f"avi {name}".encode() * 50
            (train if g == 1 else test).append(name)
            if g == 1:
                train[-1] += f" {cid}"
    splits = {
        "ucfTrainTestlist/classInd.txt": "".join(
            f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)
        ).encode(),
        "ucfTrainTestlist/trainlist01.txt": ("\r\n".join(train) + "\r\n").encode(),
        "ucfTrainTestlist/testlist01.txt": ("\r\n".join(test) + "\r\n").encode(),
    }
    return rar_files(videos), make_zip(splits)


HMDB_CLASSES = ["brush_hair", "cartwheel"]


def hmdb51_archives() -> tuple[bytes, bytes]:
    """hmdb51_org.rar: a RAR of ``<class>.rar``, each holding ``<class>/*.avi``; and
    test_train_splits.rar with ``testTrainMulti_7030_splits/<class>_test_split<k>.txt``."""
    inner, splits = {}, {}
    for cls in HMDB_CLASSES:
        clips = {f"{cls}/{cls}_clip_{i}.avi": f"{cls} {i}".encode() * 40 for i in range(3)}
        inner[f"{cls}.rar"] = rar_files(clips)
        for k in (1, 2, 3):
            lines = "".join(f"{cls}_clip_{i}.avi {1 if i < 2 else 2} \n" for i in range(3))
            splits[f"testTrainMulti_7030_splits/{cls}_test_split{k}.txt"] = lines.encode()
    outer = make_rar([(n, b, 0o100644) for n, b in inner.items()])
    return outer, rar_files(splits)


def ucf50_archive() -> bytes:
    return make_zip(
        {
            f"UCF50/{c}/v_{c}_g{g:02d}_c01.avi": b"x" * 300
            for c in ("Biking", "Diving")
            for g in (1, 2)
        }
    )


# ------------------------------------------------------------------------------- server


@dataclass
class Server:
    """Files served from 127.0.0.1 with Range support; ``cut[path] = (n, times)`` closes the
    connection after ``n`` body bytes for the next ``times`` requests of that path."""

    base: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, tuple[int, int]] = field(default_factory=dict)
    ignore_range: bool = False
    no_length: bool = False
    """Send no Content-Length (the body ends when the connection closes)."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            if state.no_length:
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            n, times = state.cut.get(self.path, (0, 0))
            if times:
                state.cut[self.path] = (n, times - 1)
                self.wfile.write(payload[:n])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def ucf101_source(server: Server, *, videos_md5: str | None = None) -> DatasetSource:
    videos, splits = ucf101_archives()
    server.files["/UCF101.rar"] = videos
    server.files["/splits.zip"] = splits
    return DatasetSource(
        "ucf101",
        "ucf101",
        RemoteFile(
            "UCF101.rar",
            (server.base + "/UCF101.rar",),
            target="UCF-101",
            md5=videos_md5 or md5(videos),
            size=len(videos),
        ),
        RemoteFile(
            "UCF101TrainTestSplits-RecognitionTask.zip",
            (server.base + "/splits.zip",),
            target="ucfTrainTestlist",
            md5=md5(splits),
        ),
    )


def hmdb51_source(server: Server) -> DatasetSource:
    videos, splits = hmdb51_archives()
    server.files["/hmdb51_org.rar"] = videos
    server.files["/test_train_splits.rar"] = splits
    return DatasetSource(
        "hmdb51",
        "hmdb51",
        RemoteFile(
            "hmdb51_org.rar", (server.base + "/hmdb51_org.rar",), target="hmdb51_org", nested=True
        ),
        RemoteFile(
            "test_train_splits.rar",
            (server.base + "/test_train_splits.rar",),
            target="testTrainMulti_7030_splits",
        ),
    )


def run(name: str, root: Path, source: DatasetSource, **kwargs: object):
    kwargs.setdefault("retries", 0)
    kwargs.setdefault("timeout", 10.0)
    return download_dataset(
        name, root, sources={name: source}, progress=False, log=lambda _: None, **kwargs
    )


# -------------------------------------------------------------------------------- tests


def test_ucf101_downloads_verifies_and_extracts_into_the_ucf101_layout(
    server: Server, tmp_path: Path
) -> None:
    result = run("ucf101", tmp_path / "ucf", ucf101_source(server))
    root = tmp_path / "ucf"
    assert result.videos == root / "UCF-101" and result.annotations == root / "ucfTrainTestlist"
    assert sorted(p.name for p in result.videos.iterdir() if p.is_dir()) == UCF_CLASSES
    index = load_index(
        DatasetConfig(kind="ucf101", root=result.videos, annotations=result.annotations)
    )
    assert len(index) == 4 and index.classes == UCF_CLASSES
    assert all(item.path.is_file() for item in index)
    assert {item.split for item in index} == {"train", "test"}
    assert not list(root.glob(".partial-*")) and not list(root.rglob("*.part"))
    assert (result.videos / ".harkit-complete").is_file()  # the completion marker
    state = json.loads((root / STATE_FILE).read_text())
    entry = state["files"]["UCF101.rar"]
    assert entry["extracted"] and entry["md5"] == md5(server.files["/UCF101.rar"])
    assert entry["checksum"].startswith("md5 published")

    # A second run fetches nothing and keeps the tree.
    server.requests.clear()
    again = run("ucf101", root, ucf101_source(server))
    assert server.requests == [] and again.videos == result.videos


def test_hmdb51_rar_of_per_class_rars_extracts_into_class_folders(
    server: Server, tmp_path: Path
) -> None:
    result = run("hmdb51", tmp_path / "hmdb", hmdb51_source(server))
    assert sorted(p.name for p in result.videos.iterdir() if p.is_dir()) == HMDB_CLASSES
    assert not list(result.videos.glob("*.rar"))  # the per-class archives are gone
    index = load_index(
        DatasetConfig(kind="hmdb51", root=result.videos, annotations=result.annotations)
    )
    assert len(index) == 6 and all(item.path.is_file() for item in index)
    assert (
        result.videos / "cartwheel" / "cartwheel_clip_2.avi"
    ).read_bytes() == b"cartwheel 2" * 40
    # No published checksum: the first download's SHA-256 is recorded, and says so.
    entry = json.loads((tmp_path / "hmdb" / STATE_FILE).read_text())["files"]["hmdb51_org.rar"]
    assert entry["sha256"] == hashlib.sha256(server.files["/hmdb51_org.rar"]).hexdigest()
    assert "recorded on first use" in entry["checksum"] and entry["recorded"]


def test_a_cut_connection_resumes_with_range_on_the_next_call(
    server: Server, tmp_path: Path
) -> None:
    source = ucf101_source(server)
    size = len(server.files["/UCF101.rar"])
    server.cut["/UCF101.rar"] = (size // 3, 1)
    root = tmp_path / "ucf"
    with pytest.raises(DownloadError, match="run again to resume"):
        run("ucf101", root, source)
    part = root / "downloads" / "UCF101.rar.part"
    assert part.stat().st_size == size // 3
    assert not (root / "UCF-101").exists()

    result = run("ucf101", root, source)
    assert ("/UCF101.rar", f"bytes={size // 3}-") in server.requests
    assert (root / "downloads" / "UCF101.rar").read_bytes() == server.files["/UCF101.rar"]
    assert not part.exists() and len(list(result.videos.rglob("*.avi"))) == 4


def test_retries_resume_within_one_call(server: Server, tmp_path: Path) -> None:
    source = ucf101_source(server)
    server.cut["/UCF101.rar"] = (100, 2)
    result = run("ucf101", tmp_path / "ucf", source, retries=2)
    ranges = [r for p, r in server.requests if p == "/UCF101.rar"]
    assert ranges == [None, "bytes=100-", "bytes=200-"]
    assert len(list(result.videos.rglob("*.avi"))) == 4


def test_a_server_that_ignores_range_restarts_the_file(server: Server, tmp_path: Path) -> None:
    source = ucf101_source(server)
    server.cut["/UCF101.rar"] = (100, 1)
    server.ignore_range = True
    with pytest.raises(DownloadError):
        run("ucf101", tmp_path / "ucf", source)
    result = run("ucf101", tmp_path / "ucf", source)
    assert (tmp_path / "ucf" / "downloads" / "UCF101.rar").read_bytes() == server.files[
        "/UCF101.rar"
    ]
    assert len(list(result.videos.rglob("*.avi"))) == 4


def test_a_checksum_mismatch_is_refused_and_the_file_set_aside(
    server: Server, tmp_path: Path
) -> None:
    source = ucf101_source(server, videos_md5="0" * 32)
    with pytest.raises(DownloadError, match="differs from the published") as info:
        run("ucf101", tmp_path / "ucf", source)
    assert "\n" not in str(info.value)
    assert (tmp_path / "ucf" / "downloads" / "UCF101.rar.bad").is_file()
    assert not (tmp_path / "ucf" / "downloads" / "UCF101.rar").exists()
    assert not (tmp_path / "ucf" / "UCF-101").exists()


def test_offline_says_what_to_fetch_and_from_dir_then_works(server: Server, tmp_path: Path) -> None:
    source = ucf101_source(server)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    offline = DatasetSource(
        "ucf101",
        "ucf101",
        *(
            RemoteFile(f.name, (dead + "/" + f.name,), f.target, f.md5, f.size)
            for f in source.files
        ),
        page="https://www.crcv.ucf.edu/data/UCF101.php",
    )
    root = tmp_path / "ucf"
    with pytest.raises(DownloadError) as info:
        run("ucf101", root, offline)
    message = str(info.value)
    assert "\n" not in message
    assert f"{dead}/UCF101.rar" in message and "by hand" in message and "--from DIR" in message
    assert str(root / "downloads") in message

    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "UCF101.rar").write_bytes(server.files["/UCF101.rar"])
    (manual / "UCF101TrainTestSplits-RecognitionTask.zip").write_bytes(server.files["/splits.zip"])
    result = run("ucf101", root, offline, from_dir=manual)
    assert len(list(result.videos.rglob("*.avi"))) == 4
    assert (manual / "UCF101.rar").is_file()  # the user's files are used in place


def test_from_dir_checks_the_published_checksum(server: Server, tmp_path: Path) -> None:
    source = ucf101_source(server)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "UCF101.rar").write_bytes(b"Rar!\x1a\x07\x00 not the dataset")
    with pytest.raises(DownloadError, match="not the official file"):
        run("ucf101", tmp_path / "ucf", source, from_dir=manual)
    assert (manual / "UCF101.rar").is_file()  # never moved: it is the user's


def test_an_interrupted_extraction_never_looks_complete_and_restarts(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harkit.data.archives as archives

    source = ucf101_source(server)
    root = tmp_path / "ucf"
    real = archives.extract_archive

    def crash(archive: Path, dest: Path, *args: object, **kwargs: object) -> None:
        real(archive, dest, *args, **kwargs)
        raise KeyboardInterrupt  # killed right after the members were written

    monkeypatch.setattr(archives, "extract_archive", crash)
    with pytest.raises(KeyboardInterrupt):
        run("ucf101", root, source)
    assert not (root / "UCF-101").exists()
    assert not json.loads((root / STATE_FILE).read_text())["files"]["UCF101.rar"]["extracted"]
    (root / ".partial-UCF-101" / "junk").mkdir(parents=True)  # as if the kill left it

    monkeypatch.setattr(archives, "extract_archive", real)
    result = run("ucf101", root, source)
    assert not (root / ".partial-UCF-101").exists()
    assert sorted(p.name for p in result.videos.iterdir() if p.is_dir()) == UCF_CLASSES


# ------------------------------------------------------------------------ hostile archives

HOSTILE_ZIPS = {
    "dotdot": (make_zip({"UCF50/ok.avi": b"ok", "../evil": b"x"}), "leaves the extraction"),
    "nested dotdot": (make_zip({"UCF50/../../evil": b"x"}), "leaves the extraction"),
    "absolute": (make_zip({"/tmp/evil": b"x"}), "absolute path"),
    "windows absolute": (make_zip({"C:/evil": b"x"}), "absolute path"),
    "symlink out": (make_zip({}, links={"UCF50/link": "../../outside"}), "outside the extraction"),
    "absolute symlink": (make_zip({}, links={"UCF50/link": "/etc"}), "outside the extraction"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_hostile_zip_members_are_refused(case: str, tmp_path: Path) -> None:
    data, why = HOSTILE_ZIPS[case]
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "UCF50.rar").write_bytes(data)  # the name is the table's; the format is sniffed
    root = tmp_path / "a" / "b" / "root"
    source = DatasetSource("ucf50", "ucf50", RemoteFile("UCF50.rar", ("http://unused",), "UCF50"))
    with pytest.raises(UnsafeArchiveError, match=why) as info:
        run("ucf50", root, source, from_dir=manual)
    assert "\n" not in str(info.value)
    assert not (root / "UCF50").exists() and not list(root.glob(".partial-*"))
    assert not list((tmp_path / "a").rglob("evil")) and not (tmp_path / "evil").exists()
    assert not list((tmp_path / "a").rglob("link"))


def test_a_symlink_inside_the_tree_is_kept_and_cannot_redirect_writes(tmp_path: Path) -> None:
    archive = tmp_path / "in.zip"
    archive.write_bytes(make_zip({"a/file.avi": b"v"}, links={"a/alias.avi": "file.avi"}))
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "alias.avi").read_bytes() == b"v"

    # A link to a folder inside the tree stays a link (members written through it land inside).
    sneaky = tmp_path / "sneaky.zip"
    sneaky.write_bytes(make_zip({}, links={"d": "."}))
    extract_archive(sneaky, tmp_path / "out2")
    assert (tmp_path / "out2" / "d").is_symlink()


def test_a_zip_bomb_is_refused_by_ratio_and_by_size(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(make_zip({"UCF50/big.avi": bytes(20 << 20)}))  # 20 MiB of zeros, ~20 KiB
    with pytest.raises(UnsafeArchiveError, match="over the 50x bound"):
        extract_archive(bomb, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.avi"))
    with pytest.raises(UnsafeArchiveError, match=r"over the 1\.0 MiB bound"):
        extract_archive(bomb, tmp_path / "out2", ExtractLimits(max_bytes=1 << 20, max_ratio=1e9))
    with pytest.raises(UnsafeArchiveError, match="more than 2 members"):
        many = tmp_path / "many.zip"
        many.write_bytes(make_zip({f"c/{i}.avi": b"x" for i in range(3)}))
        extract_archive(many, tmp_path / "out3", ExtractLimits(max_members=2))


def test_the_size_bound_counts_what_is_written_not_what_is_declared(tmp_path: Path) -> None:
    """Declared sizes can lie: a nested archive's members add up across all inner archives."""
    from harkit.data.archives import ExtractBudget

    budget = ExtractBudget(ExtractLimits(max_bytes=1000))
    first = tmp_path / "1.rar"
    first.write_bytes(rar_files({"c/a.avi": b"a" * 600}))
    second = tmp_path / "2.rar"
    second.write_bytes(rar_files({"d/b.avi": b"b" * 600}))
    extract_archive(first, tmp_path / "out", budget=budget)
    with pytest.raises(UnsafeArchiveError, match="1000 B"):
        extract_archive(second, tmp_path / "out", budget=budget)


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([("../evil", b"x", 0o100644)], "leaves the extraction"),
        ([("/abs/evil", b"x", 0o100644)], "absolute path"),
        ([("c/link", b"../../outside", 0o120777)], "link"),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_hostile_rar_members_are_refused(
    members: list[tuple[str, bytes, int]], why: str, tmp_path: Path
) -> None:
    archive = tmp_path / "x.rar"
    archive.write_bytes(make_rar([("c/ok.avi", b"ok", 0o100644), *members]))
    out = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_archive(archive, out)
    assert not (out / "c" / "ok.avi").exists()  # refused before anything was written
    assert not list(tmp_path.rglob("evil")) and not list(tmp_path.rglob("outside"))


def test_a_corrupt_rar_member_is_an_error_not_a_crash(tmp_path: Path) -> None:
    data = bytearray(rar_files({"c/v.avi": b"hello" * 20}))
    data[-20] ^= 0xFF  # inside the stored data: the CRC no longer matches
    archive = tmp_path / "bad.rar"
    archive.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="corrupt"):
        extract_archive(archive, tmp_path / "out")


def test_not_an_archive_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "UCF50.rar"
    junk.write_bytes(b"<html>moved</html>")
    with pytest.raises(DownloadError, match="not a ZIP or RAR archive"):
        extract_archive(junk, tmp_path / "out")


# ----------------------------------------------------------------------------------- CLI


def _manual_ucf50(tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``data`` as UCF50.rar in a folder for ``--from``, the table's size set to its own."""
    import harkit.data.download as download

    table = dict(download.SOURCES)
    table["ucf50"] = DatasetSource(
        "ucf50", "ucf50", RemoteFile("UCF50.rar", ("http://unused",), "UCF50", size=len(data))
    )
    monkeypatch.setattr(download, "SOURCES", table)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "UCF50.rar").write_bytes(data)
    return manual


def test_cli_from_dir_extracts_ucf50_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manual = _manual_ucf50(tmp_path, ucf50_archive(), monkeypatch)
    root = tmp_path / "root"
    assert main(["data", "download", "ucf50", str(root), "--from", str(manual)]) == 0
    out = capsys.readouterr().out
    assert "Biking" in out and "Diving" in out
    assert f"harkit data inspect {root / 'UCF50'} --kind ucf50" in out
    assert sorted(p.name for p in (root / "UCF50").iterdir() if p.is_dir()) == ["Biking", "Diving"]


def test_cli_refuses_a_file_that_is_not_the_published_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "UCF50.rar").write_bytes(ucf50_archive())
    assert main(["data", "download", "ucf50", str(tmp_path / "r"), "--from", str(manual)]) == 2
    err = capsys.readouterr().err.strip()
    assert "3233554570 expected; this is not the official file" in err and "\n" not in err


def test_cli_refuses_a_hostile_archive_in_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manual = _manual_ucf50(tmp_path, HOSTILE_ZIPS["dotdot"][0], monkeypatch)
    assert main(["data", "download", "ucf50", str(tmp_path / "r"), "--from", str(manual)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harkit: error:") and "'../evil'" in err and "\n" not in err
    assert not (tmp_path / "r" / "UCF50").exists()


def test_cli_rejects_an_unknown_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "download", "kinetics", "/tmp/x"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_without_the_rar_package_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "unrar.cffi", None)  # as if unrar2-cffi were missing
    archive = tmp_path / "x.rar"
    archive.write_bytes(rar_files({"c/v.avi": b"v"}))
    with pytest.raises(DownloadError, match=r"pip install \"unrar2-cffi>=0\.5,<0\.6\""):
        extract_archive(archive, tmp_path / "out")


def test_archives_put_in_root_downloads_by_hand_are_used(server: Server, tmp_path: Path) -> None:
    source = ucf101_source(server)
    downloads = tmp_path / "ucf" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "UCF101.rar").write_bytes(server.files["/UCF101.rar"])
    (downloads / "UCF101TrainTestSplits-RecognitionTask.zip").write_bytes(
        server.files["/splits.zip"]
    )
    server.requests.clear()
    result = run("ucf101", tmp_path / "ucf", source)
    assert server.requests == [] and len(list(result.videos.rglob("*.avi"))) == 4


def test_the_progress_bar_shows_size_and_eta(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ucf101_source(server)
    download_dataset("ucf101", tmp_path / "ucf", sources={"ucf101": source}, retries=0)
    captured = capsys.readouterr()
    assert "downloading UCF101.rar from 127.0.0.1" in captured.out
    assert re.search(r"UCF101\.rar: 100%.*\d+:\d\d<\d+:\d\d", captured.err)  # the bar shows an ETA


def test_a_folder_harkit_did_not_extract_is_never_replaced(server: Server, tmp_path: Path) -> None:
    mine = tmp_path / "ucf" / "UCF-101" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own files")
    with pytest.raises(DownloadError, match="not extracted by harkit"):
        run("ucf101", tmp_path / "ucf", ucf101_source(server))
    assert mine.read_text() == "my own files"


def test_a_chain_of_links_that_ends_outside_is_refused(tmp_path: Path) -> None:
    # Each link is lexically inside, but a/b/c resolves through a/b (= the root) to its parent.
    archive = tmp_path / "chain.zip"
    archive.write_bytes(make_zip({}, links={"a/b": "..", "a/b/c": ".."}))
    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "c").is_symlink()


def test_a_recorded_checksum_guards_later_uses_of_the_file(server: Server, tmp_path: Path) -> None:
    import shutil

    source = hmdb51_source(server)
    root = tmp_path / "hmdb"
    run("hmdb51", root, source)
    shutil.rmtree(root / "hmdb51_org")
    other = rar_files({"brush_hair/other.avi": b"not the same archive"})
    (root / "downloads" / "hmdb51_org.rar").write_bytes(other)
    with pytest.raises(DownloadError, match=r"differs from .* recorded on"):
        run("hmdb51", root, source)
    assert not (root / "hmdb51_org").exists()


def test_two_downloads_into_one_root_are_refused(tmp_path) -> None:
    import subprocess
    import sys

    from harkit.data.fetch import root_lock

    root = tmp_path / "root"
    root.mkdir()
    with root_lock(root):  # a first download, running
        with pytest.raises(DownloadError, match="another 'harkit data download' is writing"):
            download_dataset("ucf101", root, from_dir=tmp_path, progress=False)
        # from another process too (an OS lock), in one line with exit code 2
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "harkit.cli.main",
                "data",
                "download",
                "ucf101",
                str(root),
                "--from",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"harkit: error: {root}: another 'harkit data download' is writing this folder; "
            "wait for it to finish or choose another ROOT"
        )


@pytest.mark.parametrize(
    "text", ['["ucf101"]', '{"files": []}', '{"files": {"a.rar": 3}}', '{"dataset": 7}']
)
def test_a_state_file_of_the_wrong_shape_is_one_line(tmp_path, text: str) -> None:
    (tmp_path / STATE_FILE).write_text(text)
    with pytest.raises(DownloadError, match="not the state harkit writes") as err:
        download_dataset("ucf101", tmp_path, from_dir=tmp_path, progress=False)
    assert "\n" not in str(err.value)


def test_a_download_of_unknown_size_is_bounded(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harkit.data.fetch as fetch

    server.files["/big.rar"] = b"x" * 5000
    server.no_length = True
    monkeypatch.setattr(fetch, "MAX_UNKNOWN_SIZE", 4096)
    with pytest.raises(DownloadError, match=r"sent more than 4\.0 KiB without saying"):
        fetch.fetch([f"{server.base}/big.rar"], tmp_path / "big.rar", progress=False)
    assert not (tmp_path / "big.rar").exists() and not (tmp_path / "big.rar.part").exists()
    monkeypatch.setattr(fetch, "MAX_UNKNOWN_SIZE", 8192)  # within the bound: fetched whole
    path = fetch.fetch([f"{server.base}/big.rar"], tmp_path / "big.rar", progress=False)
    assert path.read_bytes() == b"x" * 5000
