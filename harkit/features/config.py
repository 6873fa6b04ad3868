"""`StoreConfig`: everything that changes stored features; its hash names the store folder.

``key`` is a hash of ``config.json``'s fields (backbone, weights tag, layer, stream,
preprocessing, sampling, dtype, format version), so two configurations never share a folder.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import PositiveInt

from harkit.backbones import get_backbone_spec, weights_tag
from harkit.config import StrictModel
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig
from harkit.features.errors import FeatureStoreError
from harkit.models.recipe import FeatureSource

__all__ = [
    "FEATURE_FORMAT_VERSION",
    "StoreConfig",
    "StoreDtype",
    "config_differences",
    "store_config",
]

FEATURE_FORMAT_VERSION = 1
_KEY_CHARS = 16
StoreDtype = Literal["float16", "float32"]


class StoreConfig(StrictModel):
    """Everything that changes the stored features; its hash names the store folder."""

    backbone: str
    weights: str
    """Weights tag: ``none``, ``imagenet``, ``kinetics`` or ``file:<sha256 prefix>``."""
    layer: str | None = None
    grid: PositiveInt = 1
    """The layer's map averaged over ``grid x grid`` cells (1: over the whole frame)."""
    stream: Literal["rgb", "flow"] = "rgb"
    kind: Literal["frame", "segment"]
    feature_dim: PositiveInt
    input_size: PositiveInt | tuple[PositiveInt, PositiveInt]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: PositiveInt | None = None
    """The weights entry's resize (used where ``transform`` sets none); None: the crop's."""
    interpolation: str = "bilinear"
    """The weights entry's (antialiased) resize interpolation."""
    transform: TransformConfig
    sampling: SamplingConfig
    sampling_id: str
    """``SamplingConfig.describe()``, for people reading ``config.json``."""
    flow_method: str | None = None
    dtype: StoreDtype = "float16"
    format_version: int = FEATURE_FORMAT_VERSION

    def key(self) -> str:
        fields = self.model_dump(mode="json")
        if fields["grid"] == 1:  # the key of every store made before grids existed
            del fields["grid"]
        # likewise for the stores made before weights entries had their own resize / interpolation
        if fields["resize_size"] is None:
            del fields["resize_size"]
        if fields["interpolation"] == "bilinear":
            del fields["interpolation"]
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:_KEY_CHARS]

    def folder_name(self) -> str:
        layer = (self.layer or "pooled").replace("/", "_")
        layer += f"-grid{self.grid}" if self.grid > 1 else ""
        flow = "-flow" if self.stream == "flow" and "flow" not in self.backbone else ""
        return f"{self.backbone}{flow}-{layer}-{self.key()}"


def store_config(
    source: FeatureSource,
    sampling: SamplingConfig,
    transform: TransformConfig | None = None,
    *,
    dtype: StoreDtype = "float16",
    flow_method: str | None = None,
) -> StoreConfig:
    """The store configuration of ``source`` under ``sampling`` / ``transform``.

    Input size, mean/std, resize and interpolation are the chosen weights entry's
    (``spec.preprocessing_for(source.weights)``), sizes overridden by ``transform`` (as
    :class:`~harkit.features.preprocess.Preprocessor` does); ``flow_method`` only counts for
    flow sources. A local weights file is identified by its content hash.
    """
    spec = get_backbone_spec(source.backbone)
    prep = spec.preprocessing_for(source.weights)  # the chosen weights entry's
    transform = transform or TransformConfig()
    dim = spec.feature_dim
    if source.layer is not None:
        if source.layer not in spec.layers:
            raise FeatureStoreError(
                f"backbone {spec.name!r} has no layer {source.layer!r}; "
                f"available: {', '.join(spec.layers) or '(none)'}"
            )
        dim = spec.layers[source.layer] * source.grid**2
    return StoreConfig(
        backbone=spec.name,
        weights=weights_tag(source.weights),
        layer=source.layer,
        grid=source.grid,
        stream=source.stream,
        kind=spec.kind,
        feature_dim=dim,
        input_size=transform.crop_size or prep.input_size,  # a pair: [height, width]
        mean=prep.mean,
        std=prep.std,
        resize_size=None if transform.resize or transform.crop_size else prep.resize_size,
        interpolation=prep.interpolation,
        transform=transform,
        sampling=sampling,
        sampling_id=sampling.describe(),
        flow_method=flow_method if source.stream == "flow" else None,
        dtype=dtype,
    )


def config_differences(old: StoreConfig, new: StoreConfig) -> str:
    """The fields that differ, one ``key (old != new)`` each (nested ones as ``key.sub``)."""
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    changed: list[str] = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            changed += [
                f"{key}.{k} ({a[key].get(k)!r} != {b[key].get(k)!r})"
                for k in sorted(set(a[key]) | set(b[key]))
                if a[key].get(k) != b[key].get(k)
            ]
        else:
            changed.append(f"{key} ({a.get(key)!r} != {b.get(key)!r})")
    return ", ".join(changed)
