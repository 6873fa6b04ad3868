"""Annotated output video: the stream's frames with the shown label drawn on them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["AnnotatedWriter"]


class AnnotatedWriter:
    """Writes frames with the current label drawn on them (H.264 through PyAV, streaming)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def _open(self, height: int, width: int) -> None:
        import av

        from harkit.synth.video import resolve_encoder

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(resolve_encoder("h264"), rate=rate)
        self._size = (height - height % 2, width - width % 2)  # yuv420p needs even sizes
        stream.height, stream.width = self._size
        stream.pix_fmt = "yuv420p"
        self._stream = stream

    def write(self, image: np.ndarray, text: str) -> None:
        import av
        import cv2

        if self._container is None:
            self._open(*image.shape[:2])
        assert self._size is not None and self._stream is not None and self._container
        h, w = self._size
        canvas = np.ascontiguousarray(image[:h, :w])
        if text:
            scale = max(0.4, h / 480)
            thick = max(1, round(scale * 2))
            origin = (8, int(24 * scale) + 4)
            cv2.putText(
                canvas,
                text,
                origin,
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (0, 0, 0),
                thick + 2,
                cv2.LINE_AA,
            )
            cv2.putText(
                canvas,
                text,
                origin,
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                thick,
                cv2.LINE_AA,
            )
        frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None and self._stream is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
