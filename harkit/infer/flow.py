"""Optical flow of new frames for flow-stream recipes (seed 001's two-stream I3D).

Training never computes flow itself: ``harkit flow`` writes one file per video (settings in
the flow folder's ``flow_config.json``: method, working size, bound, frame sampling) and
feature extraction samples the recipe's steps over the stored *pairs* (pair ``k`` runs from
frame ``k`` to ``k + 1``). Inference computes exactly those pairs with the same settings, so
the flow branch sees what it was trained on: grayscale frames resized with
:func:`harkit.flow.extract.to_gray`, the same :mod:`harkit.flow.methods` object, the same
uint8 quantisation (:func:`harkit.flow.storage.quantize_flow`). Only the pairs the sampling
picks are computed.

Settings come from, in order: an explicit ``flow_config.json`` (or its folder, or a
:class:`~harkit.flow.extract.FlowConfig`), ``run.json``'s ``flow`` entry when training
recorded one, else the recipe's ``flow_method`` with ``harkit flow``'s defaults (shorter side
256, bound 20, every frame). A different method may be asked for (a faster one on a live
stream); that is logged as a warning, since the features then differ from training's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.config import ConfigError, parse_config
from harkit.data.sampling import SampledIndices, SamplingConfig, sample_indices
from harkit.flow.extract import CONFIG_FILE, FlowConfig, to_gray
from harkit.flow.methods import FlowMethod, get_flow_method
from harkit.flow.storage import quantize_flow
from harkit.infer.errors import InferenceError
from harkit.io import read_json_object
from harkit.models.recipe import Recipe

__all__ = ["FlowComputer", "FlowSettings", "needs_flow", "pair_frames", "resolve_flow"]

log = logging.getLogger(__name__)

_CHUNK = 16  # pairs per method call, as harkit flow computes them (RAFT batches them)


def needs_flow(recipe: Recipe) -> bool:
    """Whether any feature source of ``recipe`` reads optical flow."""
    return recipe.mode == "features" and any(s.stream == "flow" for s in recipe.input.features)


@dataclass(frozen=True)
class FlowSettings:
    """The flow a model is fed at inference and where those settings come from."""

    config: FlowConfig
    origin: str
    trained_method: str
    """The recipe's ``flow_method`` (what the flow branch was trained on)."""

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
    run_info: dict[str, Any] | None = None,
) -> FlowSettings:
    """The flow settings for ``recipe`` (see the module docstring for the order).

    ``flow``: a :class:`FlowConfig`, its dict, or a ``flow_config.json`` / flow folder.
    ``method``: use another flow method than training did (warned about).
    """
    trained = recipe.input.flow_method
    recorded = (run_info or {}).get("flow")
    if isinstance(flow, FlowConfig):
        config, origin = flow, "given"
    elif isinstance(flow, dict):
        config, origin = parse_config(FlowConfig, flow, source="flow settings"), "given"
    elif flow is not None:
        config, origin = _read_config_file(Path(flow)), f"{flow}"
    elif isinstance(recorded, dict):
        recorded = {k: v for k, v in recorded.items() if k in FlowConfig.model_fields}
        config, origin = parse_config(FlowConfig, recorded, source="run.json flow"), "run.json"
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
            config.method, trained,
        )  # fmt: skip
    return settings


def pair_frames(num_frames: int, config: FlowConfig) -> np.ndarray:
    """Frame indices flow runs between, as ``harkit flow`` picks them: every frame, or the
    flow config's sampled frames (each once, in time order). Pair ``k``: ``[k] -> [k + 1]``."""
    if config.sampling is None:
        return np.arange(num_frames, dtype=np.int64)
    sampled = sample_indices(num_frames, config.sampling)
    return np.unique(sampled.indices.reshape(-1)[sampled.mask.reshape(-1)])


class FlowComputer:
    """Quantised flow of frames under :class:`FlowSettings` (predict, stream, export)."""

    def __init__(self, settings: FlowSettings) -> None:
        self.settings = settings
        self.config = settings.config
        self.method: FlowMethod = get_flow_method(self.config.method, self.config.weights)

    def gray(self, frame: np.ndarray) -> np.ndarray:
        """RGB ``uint8 (H, W, 3)`` -> the working grayscale frame."""
        return to_gray(frame, self.config.size)

    def pairs(self, grays: np.ndarray) -> np.ndarray:
        """Consecutive working frames ``(T, h, w)`` -> ``uint8 (T-1, h, w, 2)``."""
        out = []
        for start in range(0, len(grays) - 1, _CHUNK):
            chunk = grays[start : start + _CHUNK + 1]
            out.append(quantize_flow(self.method.pairs(chunk), self.config.bound))
        return np.concatenate(out)

    def _pairs(
        self, num_frames: int, sampling: SamplingConfig
    ) -> tuple[np.ndarray, SampledIndices]:
        frames_at = pair_frames(num_frames, self.config)
        if len(frames_at) < 2:
            raise InferenceError(f"{len(frames_at)} frame(s); optical flow needs at least 2")
        return frames_at, sample_indices(len(frames_at) - 1, sampling)

    def needed(self, num_frames: int, sampling: SamplingConfig) -> np.ndarray:
        """Frame indices :meth:`sample` reads (sorted, unique)."""
        frames_at, sampled = self._pairs(num_frames, sampling)
        wanted = np.unique(sampled.indices)
        return np.unique(np.concatenate([frames_at[wanted], frames_at[wanted + 1]]))

    def sample(
        self,
        num_frames: int,
        sampling: SamplingConfig,
        read: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, SampledIndices]:
        """The flow steps of a video of ``num_frames`` frames, sampled like training's.

        ``read(indices)`` returns those RGB frames (sorted, unique indices). Returns
        ``uint8 (T, h, w, 2)`` (``(T, L, h, w, 2)`` for segments) and the sampling over pairs.
        """
        frames_at, sampled = self._pairs(num_frames, sampling)
        wanted = np.unique(sampled.indices)
        needed = self.needed(num_frames, sampling)
        rgb = read(needed)
        grays = {int(i): self.gray(f) for i, f in zip(needed, rgb, strict=True)}
        flows: dict[int, np.ndarray] = {}
        # runs of consecutive pairs share their frames: one method call per run
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        for run in np.split(wanted, breaks):
            stack = np.stack([grays[int(frames_at[k])] for k in range(run[0], run[-1] + 2)])
            flows.update(zip(run.tolist(), self.pairs(stack), strict=True))
        flat = np.stack([flows[int(k)] for k in sampled.indices.reshape(-1)])
        return flat.reshape(*sampled.indices.shape, *flat.shape[1:]), sampled
