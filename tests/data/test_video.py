import json

import av
import cv2
import numpy as np
import pytest

from harkit.data.video import (
    FrameCountError,
    FrameFolderReader,
    OpenCVReader,
    PyAVReader,
    VideoReadError,
    available_backends,
    get_reader,
    probe,
    read_frames,
    rgb_converter,
)


def sequential_decode(path):
    """Reference: PyAV decodes and converts every frame in order, no threading, no seeking
    (converted as harkit does: PyAV 18.1.1's per-thread ``to_ndarray(format=...)`` would hang
    this process's later forked loader workers)."""
    to_rgb = rgb_converter()
    with av.open(str(path)) as container:
        return np.stack([to_rgb(f) for f in container.decode(video=0)])


@pytest.mark.parametrize("suffix", ["mp4", "avi"])
def test_read_frames_equal_sequential_decode(make_video, suffix):
    path = make_video(f"clip.{suffix}", num_frames=50)
    reference = sequential_decode(path)
    assert reference.shape == (50, 48, 64, 3)
    indices = [7, 0, 49, 7, 23]
    for backend in available_backends():
        if backend == "frames":
            continue
        frames = read_frames(path, indices, backend=backend)
        assert frames.dtype == np.uint8 and frames.shape == (5, 48, 64, 3)
        np.testing.assert_array_equal(frames, reference[indices], err_msg=backend)


@pytest.mark.parametrize("suffix", ["mp4", "avi"])
def test_backends_agree_on_metadata_and_all_frames(make_video, suffix):
    path = make_video(f"clip.{suffix}", num_frames=30, fps=25)
    infos = [get_reader(b).info(path) for b in available_backends() if b != "frames"]
    assert {(i.num_frames, i.width, i.height) for i in infos} == {(30, 64, 48)}
    assert all(abs(i.fps - 25) < 1e-6 for i in infos)
    assert abs(infos[0].duration - 1.2) < 1e-6
    all_pyav = np.stack(list(PyAVReader().iter_frames(path)))
    all_cv = np.stack(list(OpenCVReader().iter_frames(path)))
    np.testing.assert_array_equal(all_pyav, all_cv)


def test_frame_folder_reads_like_a_video(tmp_path, make_video):
    video = make_video("clip.mp4", num_frames=12)
    frames = sequential_decode(video)
    folder = tmp_path / "v_Jump_g01_c01"
    folder.mkdir()
    for i, frame in enumerate(frames, 1):  # natural order: frame_10 after frame_9
        cv2.imwrite(str(folder / f"frame_{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    info = probe(folder)
    assert (info.num_frames, info.width, info.height) == (12, 64, 48)
    np.testing.assert_array_equal(read_frames(folder, [9, 10, 0]), frames[[9, 10, 0]])
    assert isinstance(get_reader("auto", folder), FrameFolderReader)


def test_past_the_end_raises_frame_count_error(make_video):
    path = make_video("clip.mp4", num_frames=10)
    for reader in (PyAVReader(), OpenCVReader()):
        with pytest.raises(FrameCountError) as err:
            reader.read_frames(path, [3, 12])
        assert err.value.actual == 10


@pytest.mark.parametrize(
    "content, reason",
    [(None, "file not found"), (b"", "empty"), (b"this is not a video" * 50, "not a readable")],
)
def test_bad_files_raise_clear_errors(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoReadError) as err:
        read_frames(path, [0], backend="pyav")
    assert str(path) in str(err.value) and reason in str(err.value)
    with pytest.raises(VideoReadError):
        OpenCVReader().read_frames(path, [0])


def test_truncated_file_raises(make_video, tmp_path):
    path = make_video("clip.avi", num_frames=60)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(VideoReadError):
        read_frames(cut, [59], backend="pyav")


def test_unknown_backend_is_an_error():
    with pytest.raises(Exception, match="unknown video backend"):
        get_reader("gstreamer")


def test_real_clips_decode_with_documented_frame_counts(shared_dir):
    folder = shared_dir / "realdata" / "mmaction2_samples"
    checks = json.loads((folder / "decode_check.json").read_text())
    for check in checks:
        if not check.get("ok") or check["width"] > 640:
            continue  # the 1080p clips are slow to decode twice; small ones cover both codecs
        path = folder / check["path"]
        info = probe(path)
        assert info.num_frames == check["frames"], path
        picks = np.linspace(0, info.num_frames - 1, 8).round().astype(int)
        a = PyAVReader().read_frames(path, picks)
        b = OpenCVReader().read_frames(path, picks)
        np.testing.assert_array_equal(a, b, err_msg=str(path))
        assert abs(a.mean() - check["mean_px"]) < 25


# -- special files and resource limits --------------------------------------------------------


@pytest.fixture
def special_files(tmp_path):
    """``name -> (path, phrase of the reason)`` for files no decoder may open."""
    import os
    import socket

    files = {}
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: forever
    files["fifo"] = (fifo, "is a FIFO (named pipe), not a regular file; not opened")
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    try:  # short relative name: AF_UNIX paths are limited to ~107 bytes
        os.chdir(tmp_path)
        sock.bind("sock.mp4")
    finally:
        os.chdir(cwd)
        sock.close()
    files["socket"] = (tmp_path / "sock.mp4", "is a socket, not a regular file; not opened")
    device = tmp_path / "device.mp4"
    device.symlink_to("/dev/zero")  # reads never end
    files["device"] = (device, "is a character device, not a regular file; not opened")
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "gone.mp4")
    target = tmp_path / "gone.mp4"
    files["dangling"] = (dangling, f"broken symbolic link (its target {target} does not exist)")
    return files


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "dangling"])
def test_special_files_are_refused_before_any_open(special_files, kind, monkeypatch):
    opened = []
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a) or pytest.fail("opened"))
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: opened.append(a) or pytest.fail("opened"))
    path, phrase = special_files[kind]
    for call in (
        lambda: probe(path),
        lambda: read_frames(path, [0], backend="pyav"),
        lambda: OpenCVReader().read_frames(path, [0]),
        lambda: list(PyAVReader().iter_frames(path)),
    ):
        with pytest.raises(VideoReadError) as err:
            call()
        assert str(err.value) == f"{path}: {phrase}"
    assert opened == []


def test_folder_named_like_a_video(tmp_path):
    folder = tmp_path / "y.mp4"
    folder.mkdir()
    with pytest.raises(VideoReadError, match="is a folder without frame images"):
        probe(folder)  # auto: folders are frame folders
    with pytest.raises(VideoReadError, match=r"y\.mp4: is a folder, not a video file"):
        PyAVReader().info(folder)


def test_unlistable_frame_folder_is_a_read_error(tmp_path, monkeypatch):
    import os

    folder = tmp_path / "v_Jump_g01_c01"
    folder.mkdir()
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(VideoReadError, match="cannot list the folder \\(Permission denied\\)"):
        probe(folder)


def test_frames_over_the_pixel_limit_are_refused(make_video, monkeypatch):
    path = make_video("wide.mp4", num_frames=4, height=48, width=64)
    assert probe(path).width == 64  # within the default limit
    monkeypatch.setenv("HARKIT_MAX_PIXELS", "40x40")
    for reader in (PyAVReader(), OpenCVReader()):
        with pytest.raises(VideoReadError) as err:
            reader.read_frames(path, [0])
        assert str(err.value) == (
            f"{path}: frames of 64x48 (3,072 px) exceed the limit of 1,600 px "
            "(set HARKIT_MAX_PIXELS to raise it)"
        )
    monkeypatch.setenv("HARKIT_MAX_PIXELS", "3072")
    assert read_frames(path, [3], backend="pyav").shape == (1, 48, 64, 3)


def test_bad_limit_setting_is_a_one_line_error(make_video, monkeypatch):
    from harkit.errors import HarkitError

    path = make_video("clip.mp4", num_frames=4)
    monkeypatch.setenv("HARKIT_MAX_FRAMES", "lots")
    with pytest.raises(HarkitError, match="HARKIT_MAX_FRAMES='lots': expected a positive integer"):
        probe(path)


def test_videos_over_the_frame_limit_are_refused(make_video, monkeypatch):
    path = make_video("clip.mp4", num_frames=10)
    monkeypatch.setenv("HARKIT_MAX_FRAMES", "5")
    for reader in (PyAVReader(), OpenCVReader()):
        with pytest.raises(VideoReadError, match="more than 5 frames \\(set HARKIT_MAX_FRAMES"):
            reader.info(path)
        with pytest.raises(VideoReadError, match="more than 5 frames"):
            list(reader.iter_frames(path))


def test_a_header_claiming_a_billion_frames_is_counted(lying_avi):
    path = lying_avi(num_frames=12, claimed=10**9)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 10**9  # what the header says
    for reader in (PyAVReader(), OpenCVReader()):
        assert reader.info(path).num_frames == 12
