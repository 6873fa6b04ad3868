"""The read-ahead thread between a frame source and the stream loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from harkit.infer.sources import Frame, ReadAhead


def _frames(count: int, log: list[str], fail_at: int | None = None) -> Iterator[Frame]:
    try:
        for i in range(count):
            if i == fail_at:
                raise OSError(f"decoder lost at frame {i}")
            yield Frame(i, i / 25, np.full((2, 2, 3), i, np.uint8))
    finally:
        log.append(threading.current_thread().name)


def test_read_ahead_yields_every_frame_in_order_and_closes_the_source():
    log: list[str] = []
    reader = ReadAhead(_frames(50, log), depth=3)
    got = [(f.index, int(f.image[0, 0, 0])) for f in reader]
    assert got == [(i, i) for i in range(50)]
    assert log == ["harkit-read-ahead"]  # the generator ran (and ended) in the reader thread
    assert next(reader, None) is None  # stays exhausted


def test_read_ahead_raises_a_source_error_after_the_frames_before_it():
    log: list[str] = []
    reader = ReadAhead(_frames(10, log, fail_at=6))
    got = []
    with pytest.raises(OSError, match="frame 6"):
        for frame in reader:
            got.append(frame.index)
    assert got == list(range(6))
    assert log == ["harkit-read-ahead"]


def test_closing_read_ahead_early_stops_the_thread_and_releases_the_source():
    log: list[str] = []
    reader = ReadAhead(_frames(10_000, log), depth=2)
    assert next(reader).index == 0
    reader.close()
    assert log == ["harkit-read-ahead"]  # the source's cleanup ran, without reading it all
    assert not any(t.name == "harkit-read-ahead" for t in threading.enumerate())
    assert next(reader, None) is None
