"""Errors raised by metrics and reports."""

from __future__ import annotations

from harkit.errors import HarkitError


class EvaluationError(HarkitError, ValueError):
    """Inputs to a metric or report do not fit together (shapes, labels, class names)."""
