"""Errors of feature extraction and of the feature store."""

from __future__ import annotations

from pathlib import Path

from harkit.errors import HarkitError

__all__ = ["DamagedFeatureError", "FeatureExtractorError", "FeatureStoreError"]


class FeatureExtractorError(HarkitError):
    """The input does not fit the requested sources (missing flow, wrong clip shape, ...)."""


class FeatureStoreError(HarkitError):
    """A store is missing, belongs to another configuration, or lacks a video."""


class DamagedFeatureError(FeatureStoreError):
    """An ``ok`` row's file is missing, truncated or not what the manifest recorded."""

    def __init__(self, file: Path, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(f"feature file {file} {reason}; `harkit extract` re-extracts it")
