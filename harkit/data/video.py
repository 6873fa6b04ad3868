"""Video readers: one API over PyAV, OpenCV, TorchCodec and folders of frame images.

``read_frames(path, indices)`` returns exactly the frames at ``indices`` (0-based, in
presentation order) as ``uint8 (T, H, W, 3)`` RGB, identical across backends. Readers decode
forward from the start and convert only the frames asked for: timestamp seeks returned wrong
frames for H.264-with-B-frames in AVI, and inside short clips seeking is slower than decoding
through anyway.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harkit.errors import HarkitError

__all__ = [
    "FRAME_EXTENSIONS",
    "FrameCountError",
    "FrameFolderReader",
    "OpenCVReader",
    "PyAVReader",
    "TorchCodecReader",
    "VideoInfo",
    "VideoReadError",
    "VideoReader",
    "available_backends",
    "get_reader",
    "probe",
    "read_frames",
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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoReadError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")


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


class PyAVReader(VideoReader):
    """FFmpeg through PyAV with frame threading; the default backend."""

    name = "pyav"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    def _open(self, path: Path):
        import av

        _check_file(path)
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoReadError(path, f"not a readable video ({exc})") from exc
        if not container.streams.video:
            container.close()
            raise VideoReadError(path, "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.thread_count = self.threads
        return container, stream

    def info(self, path: str | Path) -> VideoInfo:
        import av

        path = Path(path)
        container, stream = self._open(path)
        try:
            num_frames = stream.frames
            if num_frames <= 0:  # no count in the header (e.g. some mkv/webm): count packets
                num_frames = sum(1 for p in container.demux(stream) if p.size)
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

    def _decoded(self, path: Path) -> Iterator[tuple[int, object]]:
        import av

        container, stream = self._open(path)
        try:
            yield from enumerate(container.decode(stream))
        except av.error.FFmpegError as exc:
            raise VideoReadError(path, f"decoding failed ({exc})") from exc
        finally:
            container.close()

    def iter_frames(self, path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
        for i, frame in self._decoded(Path(path)):
            if stop is not None and i >= stop:
                return
            yield frame.to_ndarray(format="rgb24")

    def _indexed_frames(
        self, path: Path, wanted: set[int], last: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        for i, frame in self._decoded(path):
            # Only wanted frames pay for the YUV -> RGB conversion.
            yield i, (frame.to_ndarray(format="rgb24") if i in wanted else None)
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
        return capture

    def info(self, path: str | Path) -> VideoInfo:
        import cv2

        path = Path(path)
        capture = self._open(path)
        try:
            num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if num_frames <= 0:
                num_frames = 0
                while capture.grab():
                    num_frames += 1
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
        try:
            for i in range(last + 1):
                if not capture.grab():
                    return
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
            return VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
        except (RuntimeError, ValueError) as exc:
            raise VideoReadError(path, f"TorchCodec cannot open it ({exc})") from exc

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
        if not path.is_dir():
            raise VideoReadError(path, "frame folder not found")
        files = [p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS]
        if not files:
            raise VideoReadError(path, f"no frame images ({', '.join(FRAME_EXTENSIONS)}) inside")
        return sorted(files, key=lambda p: _natural_key(p.name))

    @staticmethod
    def _load(file: Path) -> np.ndarray:
        import cv2

        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoReadError(file, "cannot decode frame image")
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
