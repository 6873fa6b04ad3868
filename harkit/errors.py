"""Exceptions users see. The CLI prints these as one clear line and exits non-zero."""

from __future__ import annotations


class HarkitError(Exception):
    """Base class for errors caused by input (files, configs, arguments), not by bugs."""
