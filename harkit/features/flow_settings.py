"""The flow settings a flow source's store folder records (``flow_config.json``), so a store
never mixes flows and training can record them for inference (``run.json``'s ``flow``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harkit.config import parse_config
from harkit.errors import HarkitError
from harkit.features.store import FeatureStore
from harkit.flow.extract import FlowConfig
from harkit.io import atomic_write_text, read_json_object

__all__ = [
    "FLOW_SETTINGS_FILE",
    "read_flow_settings",
    "record_flow_settings",
    "stored_flow_config",
]

#: In a flow source's store folder: the settings of the flow its features were made from, so
#: a store never mixes flows and training can record them for inference (``run.json`` flow).
FLOW_SETTINGS_FILE = "flow_config.json"


def read_flow_settings(store_path: Path) -> dict[str, Any] | None:
    """The flow settings recorded in a flow source's store folder (``None`` if none)."""
    path = store_path / FLOW_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = read_json_object(path)
    except (OSError, ValueError) as exc:
        raise HarkitError(
            f"{path}: not readable ({' '.join(str(exc).split())}); delete it and run "
            f"`harkit extract --flow-root FLOW` again"
        ) from None
    return settings


def record_flow_settings(
    stores: Sequence[FeatureStore], settings: dict[str, Any] | None, origin: str
) -> None:
    if settings is None:  # a flow folder from before flow_config.json: nothing to compare
        return
    for store in stores:
        old = read_flow_settings(store.path)
        if old is None:
            atomic_write_text(
                store.path / FLOW_SETTINGS_FILE, json.dumps(settings, indent=1, sort_keys=True)
            )
        elif old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise HarkitError(
                f"{store.path} holds features of flow computed with other settings "
                f"({', '.join(changed)} differ from {origin}); use another --store for this "
                f"flow"
            )


def stored_flow_config(stores: Sequence[FeatureStore]) -> FlowConfig | None:
    """The flow settings a flow source's store already records: without flow files, the
    videos left to extract get the flow its features were made from."""
    for store in stores:
        settings = read_flow_settings(store.path)
        if settings is not None:
            known = {k: v for k, v in settings.items() if k in FlowConfig.model_fields}
            return parse_config(FlowConfig, known, source=str(store.path / FLOW_SETTINGS_FILE))
    return None
