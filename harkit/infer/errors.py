"""Errors of inference, streaming and export; all are user-facing :class:`HarkitError`\\ s."""

from __future__ import annotations

from harkit.errors import HarkitError

__all__ = ["ExportError", "InferenceError", "SourceError", "WindowError"]


class InferenceError(HarkitError):
    """A model cannot be run on the given input (or with the requested engine)."""


class SourceError(InferenceError):
    """A stream source (file, camera, URL) cannot be opened or was lost for good."""


class ExportError(InferenceError):
    """Export failed, or the exported files are missing / do not match the run."""


class WindowError(InferenceError):
    """Window / stride settings that cannot be used (e.g. a stride longer than the window,
    which would leave time no window looks at): an argument error, not a bad video."""
