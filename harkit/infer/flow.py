"""Optical flow of new frames for flow-stream recipes (``efficientnet-motion-gru``, seed 001).

Training reads flow files that ``harkit flow`` wrote (settings in the flow folder's
``flow_config.json``: method, working size, bound, frame sampling), or extraction computed the
sampled pairs itself with the recipe's ``flow_method`` and ``harkit flow``'s defaults.
Inference computes exactly those pairs with the same settings
(:class:`~harkit.flow.sampled.SampledFlow`), so the flow branch sees what it was trained on.

Settings come from, in order: an explicit ``flow_config.json`` (or its folder, or a
:class:`~harkit.flow.extract.FlowConfig`), ``run.json``'s ``flow`` entry when training
recorded one, else the recipe's ``flow_method`` with ``harkit flow``'s defaults (shorter side
256, bound 20, every frame). A different method may be asked for (a faster one on a live
stream); that is logged as a warning, since the features then differ from training's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harkit.config import ConfigError, parse_config
from harkit.flow.extract import CONFIG_FILE, FlowConfig
from harkit.flow.sampled import SampledFlow, pair_frames
from harkit.io import read_json_object
from harkit.models.recipe import Recipe
from harkit.train.run_info import RunInfo

__all__ = ["FlowComputer", "FlowSettings", "needs_flow", "pair_frames", "resolve_flow"]

log = logging.getLogger(__name__)


def needs_flow(recipe: Recipe) -> bool:
    """Whether any feature source of ``recipe`` reads optical flow."""
    return recipe.mode == "features" and any(s.stream == "flow" for s in recipe.input.features)


@dataclass(frozen=True)
class FlowSettings:
    """The flow a model is fed at inference and where those settings come from."""

    config: FlowConfig
    origin: str
    trained_method: str
    """What the flow branch was trained on: run.json's flow method, else the recipe's."""

    @property
    def matches_training(self) -> bool:
        return self.config.method == self.trained_method

    def to_dict(self) -> dict[str, Any]:
        return {**self.config.model_dump(mode="json"), "origin": self.origin}


def _read_config_file(path: Path) -> FlowConfig:
    file = path / CONFIG_FILE if path.is_dir() else path
    try:
        stamp = read_json_object(file)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{file}: not a readable flow config ({' '.join(str(exc).split())}); expected the "
            f"{CONFIG_FILE} that `harkit flow` writes"
        ) from None
    stamp.pop("video_root", None)
    return parse_config(FlowConfig, stamp, source=str(file))


def resolve_flow(
    recipe: Recipe,
    flow: FlowConfig | dict[str, Any] | str | Path | None = None,
    method: str | None = None,
    run_info: RunInfo | None = None,
) -> FlowSettings:
    """The flow settings for ``recipe`` (see the module docstring for the order).

    ``flow``: a :class:`FlowConfig`, its dict, or a ``flow_config.json`` / flow folder.
    ``method``: use another flow method than training did (warned about).
    """
    recorded = run_info.flow if run_info is not None else None
    # the flow the features were made from (run.json), else the recipe's method
    trained = recorded.method if recorded is not None else str(recipe.input.flow_method)
    if isinstance(flow, FlowConfig):
        config, origin = flow, "given"
    elif isinstance(flow, dict):
        config, origin = parse_config(FlowConfig, flow, source="flow settings"), "given"
    elif flow is not None:
        config, origin = _read_config_file(Path(flow)), f"{flow}"
    elif recorded is not None:
        config, origin = recorded, "run.json"
    else:
        config = FlowConfig(method=trained)
        origin = f"recipe flow_method {trained} with `harkit flow` defaults"
    if method is not None and method != config.method:
        config = config.model_copy(
            update={
                "method": parse_config(FlowConfig, {"method": method}, source="flow method").method
            }
        )
        origin += f"; method {method} requested"
    settings = FlowSettings(config, origin, trained)
    if not settings.matches_training:
        log.warning(
            "flow method %s differs from the one the run was trained on (%s): the flow "
            "features will not match training and accuracy may drop",
            config.method,
            trained,
        )
    return settings


class FlowComputer(SampledFlow):
    """:class:`~harkit.flow.sampled.SampledFlow` under a model's :class:`FlowSettings`."""

    def __init__(self, settings: FlowSettings) -> None:
        super().__init__(settings.config)
        self.settings = settings
