"""Video readers: one API over PyAV, OpenCV, TorchCodec and folders of frame images.

``read_frames(path, indices)`` returns exactly the frames at ``indices`` (0-based, in
presentation order) as ``uint8 (T, H, W, 3)`` RGB, identical across backends. Readers decode
forward from the start and convert only the frames asked for: timestamp seeks returned wrong
frames for H.264-with-B-frames in AVI, and inside short clips seeking is slower than decoding
through anyway.

Two resource limits protect long jobs from single files (both overridable, see
:func:`max_pixels` / :func:`max_frames`): a frame may hold at most ``HARKIT_MAX_PIXELS``
pixels (default 4096x4096) and a video at most ``HARKIT_MAX_FRAMES`` frames (default
100,000). A header's frame count is never trusted past the frame limit: the frames are
counted instead. Anything that is not a regular file (FIFO, socket, device, broken link) is
refused before it is opened, since opening a FIFO blocks forever.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from harkit.errors import HarkitError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "FRAME_EXTENSIONS",
    "MAX_FRAMES_ENV",
    "MAX_PIXELS_ENV",
    "FrameCountError",
    "FrameFolderReader",
    "OpenCVReader",
    "PyAVReader",
    "TorchCodecReader",
    "VideoInfo",
    "VideoReadError",
    "VideoReader",
    "available_backends",
    "check_frame_size",
    "check_video_path",
    "get_reader",
    "max_frames",
    "max_pixels",
    "probe",
    "read_frames",
    "rgb_converter",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class VideoReadError(HarkitError):
    """A video could not be opened or decoded. ``path`` names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FrameCountError(VideoReadError):
    """Frames were asked for past the real end of a video whose header over-counts."""

    def __init__(self, path: str | Path, actual: int, wanted: int) -> None:
        self.actual = actual
        super().__init__(
            path,
            f"asked for frame {wanted} but the video decodes to only {actual} frames "
            "(its header over-counts); sample again with the counted length",
        )


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata. ``num_frames`` is counted when the header has no count."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "duration": self.duration}


def _check_indices(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(idx.min())}")
    return idx


MAX_PIXELS_ENV = "HARKIT_MAX_PIXELS"
MAX_FRAMES_ENV = "HARKIT_MAX_FRAMES"
#: 4096x4096 = 16.8 Mpx: covers DCI 4K (4096x2160) with room to spare; one decoded RGB frame
#: is then at most 48 MiB, a 16-frame clip 768 MiB before any resize.
DEFAULT_MAX_PIXELS = 4096 * 4096
#: 100,000 frames: 55 min at 30 fps, far beyond any action clip; index arrays stay < 1 MiB.
DEFAULT_MAX_FRAMES = 100_000


def _env_limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = 1
    try:  # pixels may also be given as WxH
        for part in text.lower().split("x"):
            value *= int(part) if int(part) > 0 else 0
    except ValueError:
        value = 0
    if value < 1:
        raise HarkitError(f"{name}={text!r}: expected a positive integer (pixels also as WxH)")
    return value


def max_pixels() -> int:
    """Most pixels one frame may have: ``$HARKIT_MAX_PIXELS`` (an integer or ``WxH``), default
    :data:`DEFAULT_MAX_PIXELS`. Read on every call, so DataLoader workers and subprocesses
    follow the environment."""
    return _env_limit(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def max_frames() -> int:
    """Most frames one video may have: ``$HARKIT_MAX_FRAMES``, default
    :data:`DEFAULT_MAX_FRAMES`."""
    return _env_limit(MAX_FRAMES_ENV, DEFAULT_MAX_FRAMES)


def check_frame_size(path: str | Path, width: int, height: int) -> None:
    """Raise :class:`VideoReadError` for frames over :func:`max_pixels` (0 = unknown: passes)."""
    limit = max_pixels()
    if width * height > limit:
        raise VideoReadError(
            path,
            f"frames of {width}x{height} ({width * height:,} px) exceed the limit of "
            f"{limit:,} px (set {MAX_PIXELS_ENV} to raise it)",
        )


def _too_many_frames(path: str | Path, limit: int) -> VideoReadError:
    return VideoReadError(
        path, f"more than {limit:,} frames (set {MAX_FRAMES_ENV} to raise the limit)"
    )


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_video_path(path: str | Path, *, folder: bool = False) -> os.stat_result:
    """Refuse, with the reason, anything a decoder must not open: missing files, broken links,
    FIFOs, sockets, devices (opening those blocks or reads forever), empty files, and folders
    (unless ``folder``). Called before every open; returns the ``stat`` of ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise VideoReadError(
                path, f"broken symbolic link (its target {os.readlink(path)} does not exist)"
            ) from None
        raise VideoReadError(path, "file not found") from None
    except OSError as exc:  # no permission on a parent folder, link loop, name too long
        raise VideoReadError(path, f"cannot access it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        if folder:
            return st
        raise VideoReadError(path, "is a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL_FILES if test(st.st_mode)), "not a regular file")
        raise VideoReadError(path, f"is {kind}, not a regular file; not opened")
    if st.st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    return st


def _check_file(path: Path) -> None:
    check_video_path(path)


def _gather(path: Path, idx: np.ndarray, frames: Iterator[tuple[int, np.ndarray]]) -> np.ndarray:
    """Collect the frames at ``idx`` (any order, repeats allowed) from a forward iterator."""
    if idx.size == 0:
        raise ValueError(f"{path}: no frame indices given")
    wanted = {int(i) for i in idx}
    last = int(idx.max())
    found: dict[int, np.ndarray] = {}
    seen = 0
    for i, frame in frames:
        seen = i + 1
        if i in wanted:
            found[i] = frame
        if i >= last:
            break
    if last not in found:
        raise FrameCountError(path, actual=seen, wanted=last)
    return np.stack([found[int(i)] for i in idx])


class VideoReader(ABC):
    """A decoding backend. Subclasses must return identical frames for the same file."""

    name: ClassVar[str]

    @abstractmethod
    def info(self, path: str | Path) -> VideoInfo:
        """Metadata of one video."""

    @abstractmethod
    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        """Every frame in order as ``uint8 (H, W, 3)`` RGB, up to index ``stop`` (exclusive)."""

    def read_frames(self, path: str | Path, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` as ``uint8 (T, H, W, 3)`` RGB, in the order given."""
        path = Path(path)
        idx = _check_indices(indices)
        return _gather(path, idx, self._indexed_frames(path, set(idx.tolist()), int(idx.max())))

    def _indexed_frames(
        self, path: Path, wanted: set[int], last: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        # Default: decode and convert everything; backends override to convert only ``wanted``.
        yield from enumerate(self.iter_frames(path, stop=last + 1))


def rgb_converter() -> Callable[[VideoFrame], np.ndarray]:
    """A function from decoded frames to RGB24 ``(H, W, 3)`` arrays, converting with a
    reformatter of its own that goes with it.

    Not ``frame.to_ndarray(format="rgb24")``: from PyAV 18.1.1 it converts with one reformatter
    per thread, kept for the thread's life. Its swscale slice threads are not copied into a
    forked DataLoader worker, so after the main thread had converted one frame, a worker's
    first conversion waited for them forever.
    """
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()

    def to_rgb(frame: VideoFrame) -> np.ndarray:
        return reformatter.reformat(frame, format="rgb24").to_ndarray()

    return to_rgb


class PyAVReader(VideoReader):
    """FFmpeg through PyAV with frame threading; the default backend."""

    name = "pyav"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    def open(self, path: Path) -> tuple[InputContainer, VideoStream]:
        """``(container, first video stream)`` after the file and frame-size checks; the
        caller closes the container."""
        import av

        _check_file(path)
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc  # strerror: without the path again
            raise VideoReadError(path, f"not a readable video ({why})") from exc
        try:
            if not container.streams.video:
                raise VideoReadError(path, "the file has no video stream")
            stream = container.streams.video[0]
            # before the first decode: an 8192x8192 clip would fill memory frame by frame
            check_frame_size(path, stream.codec_context.width, stream.codec_context.height)
        except BaseException:
            container.close()
            raise
        stream.thread_type = "AUTO"
        if self.threads:
            stream.thread_count = self.threads
        return container, stream

    def info(self, path: str | Path) -> VideoInfo:
        import av

        path = Path(path)
        container, stream = self.open(path)
        try:
            num_frames = stream.frames
            limit = max_frames()
            if not 0 < num_frames <= limit:
                # No count in the header (some mkv/webm), or one past the limit that may be a
                # lie (an AVI claiming 1e9 frames): count packets, at most limit + 1.
                num_frames = 0
                for packet in container.demux(stream):
                    num_frames += 1 if packet.size else 0
                    if num_frames > limit:
                        raise _too_many_frames(path, limit)
            rate = stream.average_rate or stream.guessed_rate or 0
            return VideoInfo(
                path=str(path),
                num_frames=int(num_frames),
                fps=float(rate),
                width=int(stream.codec_context.width),
                height=int(stream.codec_context.height),
                codec=stream.codec_context.name,
            )
        except av.error.FFmpegError as exc:
            raise VideoReadError(path, f"cannot read metadata ({exc})") from exc
        finally:
            container.close()

    def decode(self, path: Path, *, bounded: bool = True) -> Iterator[tuple[int, VideoFrame]]:
        """``(index, av.VideoFrame)`` in order. ``bounded``: stop with :class:`VideoReadError`
        past :func:`max_frames` (callers that keep no frames, like streaming, pass False)."""
        import av

        container, stream = self.open(path)
        limit = max_frames() if bounded else None
        try:
            for i, frame in enumerate(container.decode(stream)):
                if limit is not None and i >= limit:
                    raise _too_many_frames(path, limit)
                check_frame_size(path, frame.width, frame.height)  # the size may change midway
                yield i, frame
        except av.error.FFmpegError as exc:
            why = getattr(exc, "strerror", None) or exc
            raise VideoReadError(path, f"decoding failed ({why})") from exc
        finally:
            container.close()

    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        to_rgb = rgb_converter()
        for i, frame in self.decode(Path(path)):
            if stop is not None and i >= stop:
                return
            yield to_rgb(frame)

    def _indexed_frames(
        self, path: Path, wanted: set[int], last: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        to_rgb = rgb_converter()
        for i, frame in self.decode(path):
            # Only wanted frames pay for the YUV -> RGB conversion.
            yield i, (to_rgb(frame) if i in wanted else None)
            if i >= last:
                return


class OpenCVReader(VideoReader):
    """OpenCV's FFmpeg capture; ``grab`` skips the colour conversion of unwanted frames."""

    name = "opencv"

    def _open(self, path: Path):
        import cv2

        _check_file(path)
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise VideoReadError(path, "OpenCV cannot open it as a video")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_frame_size(path, width, height)
        except VideoReadError:
            capture.release()
            raise
        return capture

    def info(self, path: str | Path) -> VideoInfo:
        import cv2

        path = Path(path)
        capture = self._open(path)
        try:
            num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            limit = max_frames()
            if not 0 < num_frames <= limit:  # missing, or past the limit: count (see PyAV)
                num_frames = 0
                while capture.grab():
                    num_frames += 1
                    if num_frames > limit:
                        raise _too_many_frames(path, limit)
            fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
            codec = "".join(chr((fourcc >> 8 * k) & 0xFF) for k in range(4)).strip("\x00 ")
            return VideoInfo(
                path=str(path),
                num_frames=num_frames,
                fps=float(capture.get(cv2.CAP_PROP_FPS)),
                width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                codec=codec.lower(),
            )
        finally:
            capture.release()

    def _indexed_frames(
        self, path: Path, wanted: set[int], last: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        import cv2

        capture = self._open(path)
        limit = max_frames()
        try:
            for i in range(last + 1):
                if not capture.grab():
                    return
                if i >= limit:
                    raise _too_many_frames(path, limit)
                frame = None
                if i in wanted:
                    ok, bgr = capture.retrieve()
                    if not ok:
                        raise VideoReadError(path, f"OpenCV failed to decode frame {i}")
                    frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield i, frame
        finally:
            capture.release()

    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        path = Path(path)
        last = stop - 1 if stop is not None else 2**62
        everything = _AllIndices()
        for _, frame in self._indexed_frames(path, everything, last):
            yield frame


class _AllIndices(set):
    def __contains__(self, item: object) -> bool:
        return True


class TorchCodecReader(VideoReader):
    """TorchCodec (needs a system FFmpeg); used automatically when it imports."""

    name = "torchcodec"

    def _decoder(self, path: Path):
        from torchcodec.decoders import VideoDecoder

        _check_file(path)
        try:
            decoder = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
        except (RuntimeError, ValueError) as exc:
            raise VideoReadError(path, f"TorchCodec cannot open it ({exc})") from exc
        meta = decoder.metadata
        check_frame_size(path, int(meta.width or 0), int(meta.height or 0))
        if len(decoder) > max_frames():  # 'exact' mode counted the frames by scanning
            raise _too_many_frames(path, max_frames())
        return decoder

    def info(self, path: str | Path) -> VideoInfo:
        path = Path(path)
        meta = self._decoder(path).metadata
        return VideoInfo(
            path=str(path),
            num_frames=int(meta.num_frames or 0),
            fps=float(meta.average_fps or 0.0),
            width=int(meta.width),
            height=int(meta.height),
            codec=str(meta.codec),
        )

    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        decoder = self._decoder(Path(path))
        count = len(decoder) if stop is None else min(stop, len(decoder))
        for i in range(count):
            yield decoder[i].numpy()

    def read_frames(self, path: str | Path, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        path = Path(path)
        idx = _check_indices(indices)
        decoder = self._decoder(path)
        if idx.size and int(idx.max()) >= len(decoder):
            raise FrameCountError(path, actual=len(decoder), wanted=int(idx.max()))
        return decoder.get_frames_at(idx.tolist()).data.numpy()


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


class FrameFolderReader(VideoReader):
    """A folder with one image per frame (e.g. UCF101 ``jpegs_256``), in natural name order."""

    name = "frames"

    def __init__(self, fps: float = 25.0) -> None:
        self.fps = fps

    def _frame_files(self, path: Path) -> list[Path]:
        check_video_path(path, folder=True)
        if not path.is_dir():
            raise VideoReadError(path, "is a file, not a folder of frame images")
        try:
            with os.scandir(path) as entries:
                files = [
                    Path(e.path) for e in entries if Path(e.name).suffix.lower() in FRAME_EXTENSIONS
                ]
        except OSError as exc:  # e.g. no read permission on the folder
            raise VideoReadError(path, f"cannot list the folder ({exc.strerror or exc})") from None
        if not files:
            raise VideoReadError(
                path, f"is a folder without frame images ({', '.join(FRAME_EXTENSIONS)})"
            )
        if len(files) > max_frames():
            raise _too_many_frames(path, max_frames())
        return sorted(files, key=lambda p: _natural_key(p.name))

    @staticmethod
    def _load(file: Path) -> np.ndarray:
        import cv2

        check_video_path(file)  # a FIFO named 0001.jpg would block imread
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoReadError(file, "cannot decode frame image")
        check_frame_size(file, bgr.shape[1], bgr.shape[0])
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def info(self, path: str | Path) -> VideoInfo:
        path = Path(path)
        files = self._frame_files(path)
        height, width = self._load(files[0]).shape[:2]
        codec = files[0].suffix.lower().lstrip(".")
        return VideoInfo(str(path), len(files), self.fps, width, height, codec)

    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        for file in self._frame_files(Path(path))[:stop]:
            yield self._load(file)

    def read_frames(self, path: str | Path, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        path = Path(path)
        idx = _check_indices(indices)
        files = self._frame_files(path)
        if idx.size and int(idx.max()) >= len(files):
            raise FrameCountError(path, actual=len(files), wanted=int(idx.max()))
        cache = {int(i): self._load(files[int(i)]) for i in set(idx.tolist())}
        return np.stack([cache[int(i)] for i in idx])


_BACKENDS: dict[str, type[VideoReader]] = {
    cls.name: cls for cls in (PyAVReader, OpenCVReader, TorchCodecReader, FrameFolderReader)
}


@functools.cache
def _torchcodec_usable() -> bool:
    if importlib.util.find_spec("torchcodec") is None:
        return False
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg libraries)
    except (ImportError, OSError, RuntimeError):
        return False
    return True


def available_backends() -> list[str]:
    """Backends that work on this machine (TorchCodec only with a loadable system FFmpeg)."""
    names = ["pyav", "opencv", "frames"]
    if _torchcodec_usable():
        names.insert(2, "torchcodec")
    return names


def get_reader(backend: str = "auto", path: str | Path | None = None) -> VideoReader:
    """A reader by name.

    ``auto`` picks frame folders for directories, TorchCodec when it imports (except for AVI,
    where its decoding of B-frames was measured wrong), and PyAV otherwise.
    """
    if backend == "auto":
        path = Path(path) if path is not None else None
        if path is not None and path.is_dir():
            backend = "frames"
        elif _torchcodec_usable() and (path is None or path.suffix.lower() != ".avi"):
            backend = "torchcodec"
        else:
            backend = "pyav"
    if backend not in _BACKENDS:
        raise HarkitError(f"unknown video backend '{backend}'; expected one of {sorted(_BACKENDS)}")
    if backend == "torchcodec" and not _torchcodec_usable():
        raise HarkitError("backend 'torchcodec' needs the torchcodec package and a system FFmpeg")
    return _BACKENDS[backend]()


def probe(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Metadata of a video file or frame folder."""
    return get_reader(backend, path).info(path)


def read_frames(
    path: str | Path, indices: Sequence[int] | np.ndarray, backend: str = "auto"
) -> np.ndarray:
    """Frames at ``indices`` of a video file or frame folder, ``uint8 (T, H, W, 3)`` RGB."""
    return get_reader(backend, path).read_frames(path, indices)
