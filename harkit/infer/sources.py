"""Frame sources of a stream: a video file, a webcam or a network URL, frame by frame.

A :class:`FrameSource` yields :class:`Frame` objects in order. ``live`` sources (cameras,
URLs, and files played with ``realtime=True``) deliver frames in real time, so the stream
loop drops frames that are already late (:func:`harkit.infer.stream.run_stream`); network
sources reconnect with exponential back-off (bounded attempts, see :class:`URLSource`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.clips import out_of_memory_reason
from harkit.data.video import (
    PyAVReader,
    VideoReadError,
    check_frame_size,
    probe,
    rgb_converter,
)
from harkit.infer.errors import SourceError

__all__ = [
    "CameraSource",
    "FileSource",
    "Frame",
    "FrameSource",
    "ReadAhead",
    "URLSource",
    "open_source",
]

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One decoded frame: RGB ``uint8 (H, W, 3)``, its index and time (s) in the source.

    ``restart`` marks the first frame after a reconnect (the source clock starts again).
    """

    index: int
    time: float
    image: np.ndarray
    restart: bool = False


class FrameSource(ABC):
    """Frames of a stream in order. ``live``: frames arrive in real time (drop when late);
    ``paced``: the reader must wait for each frame's time itself (a file in real time)."""

    name: str = ""
    fps: float = 25.0
    num_frames: int | None = None
    """Frames in the whole source when known before decoding (files), else None."""
    live: bool = False
    paced: bool = False
    reconnects: int = 0
    end_reason: str = "end of stream"

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the stream ends (or is lost for good)."""


def _rate(stream: Any, default: float = 25.0) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if 0 < value < 1000 else default


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class ReadAhead(Iterator[Frame]):
    """Iterates ``frames`` (a source's generator) in a background thread, up to ``depth``
    frames ahead, so decoding overlaps the network (PyAV and OpenCV release the GIL while
    they decode and convert). An EfficientNet-Lite0 + GRU stream on 2 cores went from about
    100 to about 130 frames/s (``benchmarks/infer.py``). An error of the source is raised
    here, at the frame where it happened; :meth:`close` stops the thread and closes the
    generator in it (releasing the decoder or camera).
    """

    def __init__(self, frames: Iterator[Frame], depth: int = 4) -> None:
        self._frames = frames
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._read, name="harkit-read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self._frames:
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> Frame:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END or isinstance(item, _Failed):
            self._done = True
            self._thread.join()
            if item is _END:
                raise StopIteration
            raise item.error
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop reading and wait (at most ``timeout`` s: a network read may hang) for the
        thread to close the source."""
        self._done = True
        self._stop.set()
        self._thread.join(timeout)


class FileSource(FrameSource):
    """A video file decoded with PyAV, as fast as possible or at its native rate."""

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._reader = PyAVReader()
        try:
            # The reader's checks: no FIFO/device is opened, oversized frames are refused.
            container, stream = self._reader.open(self.path)
        except VideoReadError as exc:
            raise SourceError(str(exc)) from None
        with container:
            self.fps = _rate(stream)
        self.paced = self.live = realtime
        try:  # the count predict samples from (same reader choice), so both pick one set
            self.num_frames = probe(self.path).num_frames or None
        except (VideoReadError, OSError):  # e.g. no count and past the frame limit
            self.num_frames = None

    def frames(self) -> Iterator[Frame]:
        to_rgb = rgb_converter()
        try:
            for i, frame in self._reader.decode(self.path, bounded=False):
                t = float(frame.time) if frame.time is not None else i / self.fps
                yield Frame(i, t, to_rgb(frame))
        except VideoReadError as exc:  # corrupt data midway, or past a size / length limit
            log.warning("%s: decoding stopped early (%s)", self.name, exc.reason)
            self.end_reason = f"decoding error: {exc.reason}"
        except MemoryError as exc:
            self.end_reason = f"decoding error: {out_of_memory_reason(exc)}"
            log.warning("%s: decoding stopped early (%s)", self.name, self.end_reason)


class CameraSource(FrameSource):
    """A webcam through ``cv2.VideoCapture(index)``."""

    live = True

    def __init__(self, index: int, max_failures: int = 30) -> None:
        import cv2

        self.name = f"camera {index}"
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceError(f"no camera at index {index} (cv2.VideoCapture cannot open it)")
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.max_failures = max_failures

    def frames(self) -> Iterator[Frame]:
        import cv2

        start = time.monotonic()
        failures, index = 0, 0
        try:
            while failures < self.max_failures:  # bounded: a camera unplugged mid-stream ends
                ok, bgr = self.capture.read()
                if not ok:
                    failures += 1
                    time.sleep(0.01)
                    continue
                failures = 0
                yield Frame(index, time.monotonic() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
            self.end_reason = "camera stopped delivering frames"
        finally:
            self.capture.release()


class URLSource(FrameSource):
    """A network stream (rtsp/http/...) through PyAV, reconnecting with exponential back-off.

    ``timeout``: seconds to open and to wait for data (``av.open(url, timeout=...)``).
    A failed open or a stream that stops early is retried after ``backoff * 2**k`` seconds
    (capped at ``max_backoff``), at most ``retries`` times in a row and ``max_reconnects``
    times in all; after that the stream ends (or, if no frame ever arrived, raises
    :class:`SourceError`). The end of data counts as a drop unless the container announced a
    duration and it was reached. After a reconnect to a source with a known duration
    (a file served over HTTP), frames already seen are skipped, so playback resumes.
    """

    live = True

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_reconnects: int = 10,
    ) -> None:
        self.url = self.name = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_reconnects = max_reconnects
        self.drops = 0

    def _open(self):
        import av

        options = {"rtsp_transport": "tcp"} if self.url.startswith("rtsp") else {}
        return av.open(self.url, options=options, timeout=(self.timeout, self.timeout))

    def _why(self, exc: BaseException) -> str:
        # FFmpeg reports its own timeout (the interrupt callback) as "Immediate exit requested".
        if "Immediate exit requested" in str(exc):
            return f"no answer within {self.timeout:g} s"
        return str(getattr(exc, "strerror", None) or exc)

    def _wait(self, attempt: int, reason: str) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        log.warning(
            "%s: %s; reconnecting in %.2f s (attempt %d of %d)",
            self.url,
            reason,
            delay,
            attempt,
            self.retries,
        )
        time.sleep(delay)

    def frames(self) -> Iterator[Frame]:
        import av

        index, attempt = 0, 0
        last_time: float | None = None
        offset = 0.0
        restart = False
        to_rgb = rgb_converter()
        while True:
            try:
                container = self._open()
            except (av.error.FFmpegError, OSError) as exc:
                attempt += 1
                why = self._why(exc)
                if attempt > self.retries:
                    if index == 0:
                        raise SourceError(
                            f"cannot open stream {self.url}: {why} "
                            f"(gave up after {self.retries} retries)"
                        ) from None
                    self.end_reason = f"lost the stream, {self.retries} reconnects failed"
                    log.error("%s: %s", self.url, self.end_reason)
                    return
                self._wait(attempt, f"cannot connect ({why})")
                continue
            clean, reason, got = False, "the stream ended early", 0
            try:
                if not container.streams.video:
                    raise SourceError(f"{self.url}: the stream has no video")
                stream = container.streams.video[0]
                try:  # the frame-size limit of files holds for streams too
                    ctx = stream.codec_context
                    check_frame_size(self.url, ctx.width, ctx.height)
                except VideoReadError as exc:
                    raise SourceError(str(exc)) from None
                self.fps = _rate(stream, self.fps)
                duration = container.duration / 1e6 if container.duration else None
                first: float | None = None
                for frame in container.decode(stream):
                    t = float(frame.time) if frame.time is not None else got / self.fps
                    got += 1
                    if duration is not None and last_time is not None and t <= last_time:
                        continue  # a file replayed from its start after a reconnect: resume
                    if duration is None and restart and first is None:
                        first = t  # live: keep the clock running across reconnects
                        offset = (last_time or 0.0) + 1.0 / self.fps - t
                    t = t + (offset if duration is None else 0.0)
                    attempt = 0
                    yield Frame(index, t, to_rgb(frame), restart)
                    restart = False
                    index += 1
                    last_time = t
                clean = (
                    duration is not None
                    and last_time is not None
                    and (last_time >= duration - 1.5 / self.fps)
                )
            except (av.error.FFmpegError, OSError, EOFError) as exc:
                reason = f"connection lost ({self._why(exc)})"
            finally:
                container.close()
            if clean:
                self.end_reason = "end of stream"
                return
            self.drops += 1
            if self.reconnects >= self.max_reconnects:
                self.end_reason = f"stream dropped; reconnect limit ({self.max_reconnects}) hit"
                log.error("%s: %s", self.url, self.end_reason)
                return
            attempt += 1
            if attempt > self.retries:
                self.end_reason = f"stream dropped; {self.retries} reconnects gave no frames"
                log.error("%s: %s", self.url, self.end_reason)
                return
            self._wait(attempt, f"{reason} after {got} frames")
            self.reconnects += 1
            restart = True


def open_source(
    source: str | int,
    realtime: bool = False,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> FrameSource:
    """A webcam index (``0``), a URL (``rtsp://``, ``http://``, ...) or a video file."""
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return CameraSource(int(text))
    if "://" in text:
        return URLSource(text, timeout=timeout, retries=retries, backoff=backoff)
    return FileSource(text, realtime=realtime)
