"""Errors raised by the backbone registry and weight loading."""

from __future__ import annotations

from harkit.errors import HarkitError


class BackboneError(HarkitError):
    """Base class for backbone problems the user can fix (names, weights, layers)."""


class UnknownBackboneError(BackboneError, ValueError):
    """A backbone name that is not registered; the message lists the known names."""


class WeightsUnavailableError(BackboneError):
    """Pretrained weights could not be downloaded; the message says which file to put where."""


class WeightsLoadError(BackboneError, ValueError):
    """A weights file could not be read or does not fit the architecture."""


class WeightsHashError(WeightsLoadError):
    """A downloaded (or shipped) weights file whose SHA-256 is not the recorded one: refused,
    and a download removed; the message names the file and both hashes."""
