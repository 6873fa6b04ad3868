"""`BackboneSpec` and the backbone registry (name -> spec), with its `WeightsSource` entries and
the `Preprocessing` each of them owns."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar, overload

from harkit._lazy import validated
from harkit.backbones.errors import BackboneError, UnknownBackboneError, WeightsLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harkit.arguments import BackboneName

__all__ = [
    "BackboneKind",
    "BackboneSpec",
    "Builder",
    "Interpolation",
    "Preprocessing",
    "WeightsSource",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
    "register_backbone_family",
]

BackboneKind = Literal["frame", "segment"]
Interpolation = Literal["bilinear", "bicubic"]
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic")

# builder(spec, pretrained_tag, state_dict) -> network mapping a batch to (B, feature_dim).
# At most one of pretrained_tag / state_dict is given; with neither the weights are random.
# spec.weights[pretrained_tag] is the `WeightsSource` to fetch (its .source, .url, .sha256).
Builder = Callable[["BackboneSpec", "str | None", "Mapping[str, torch.Tensor] | None"], "nn.Module"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
# torch.hub's convention: 'name-<first 8+ hex digits of the file's SHA-256>.ext'
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.")


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded ``uint8`` frame becomes the network's input, for one set of weights.

    The shorter side is resized to ``resize_size`` (``None``: to the crop, so the centre
    square keeps as much of the frame as it can) with antialiased ``interpolation``, the
    centre ``input_size`` square is cut out, and ``(x / 255 - mean) / std`` is taken per
    channel. A recipe's ``input.transform`` (``resize``, ``crop_size``) overrides the sizes.
    Owned by a `WeightsSource` (weights trained on ``[-1, 1]`` input carry mean = std = 0.5,
    ImageNet ones the ImageNet statistics), like timm's pretrained config and torchvision's
    ``Weights.transforms()``.
    """

    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int | None = None
    interpolation: Interpolation = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not self.mean or len(self.mean) != len(self.std):
            raise BackboneError(
                f"preprocessing: mean and std need one value per channel "
                f"(got {len(self.mean)} / {len(self.std)})"
            )
        if any(v <= 0 for v in self.std):
            raise BackboneError(f"preprocessing: std must be positive, got {self.std}")
        if int(self.input_size) != self.input_size or self.input_size < 1:
            raise BackboneError(f"preprocessing: input_size must be >= 1, got {self.input_size}")
        if self.resize_size is not None and self.resize_size < self.input_size:
            raise BackboneError(
                f"preprocessing: resize_size {self.resize_size} is smaller than the "
                f"{self.input_size} px crop"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise BackboneError(
                f"preprocessing: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                f"got {self.interpolation!r}"
            )

    @property
    def channels(self) -> int:
        return len(self.mean)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a float batch in [0, 1] (channels at dim 1) with this mean/std."""
        import torch

        if x.ndim < 3 or x.shape[1] != self.channels:
            raise BackboneError(
                f"preprocessing expects {self.channels} channels at dim 1, "
                f"got shape {tuple(x.shape)}"
            )
        view = (1, self.channels) + (1,) * (x.ndim - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(view)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(view)
        return (x - mean) / std


@dataclass(frozen=True)
class WeightsSource:
    """One set of pretrained weights of a backbone, and the input they were trained on.

    ``source`` is what the builder understands (a torchvision weights enum name, a timm
    ``arch.tag``, a file name). ``preprocessing`` is the input these weights expect (``None``:
    the spec's own, see `BackboneSpec`). A download from ``url`` is checked against
    ``sha256`` (the file's full hex SHA-256), or else against the SHA-256 prefix in the file
    name (torch.hub's ``name-<hash>.ext``, torchvision's convention); a URL with neither is
    never downloaded (the user puts the file in place).
    """

    source: str
    preprocessing: Preprocessing | None = None
    url: str | None = None
    sha256: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if not _SHA256.fullmatch(digest):
                raise BackboneError(
                    f"weights {self.source!r}: sha256 must be 64 hex digits, got {self.sha256!r}"
                )
            object.__setattr__(self, "sha256", digest)

    @property
    def filename(self) -> str:
        """The file name of ``url`` (or ``source`` when there is no URL)."""
        from urllib.parse import urlparse

        return os.path.basename(urlparse(self.url).path) if self.url else self.source

    @property
    def expected_hash(self) -> str | None:
        """What a download must hash to: ``sha256``, or the prefix in the URL's file name."""
        if self.sha256:
            return self.sha256
        match = _NAME_HASH.search(self.filename) if self.url else None
        return match.group(1) if match else None


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build a feature extractor and to prepare its input.

    ``kind`` is ``'frame'`` (2D CNN, input ``(B, C, H, W)``) or ``'segment'`` (3D CNN, input
    ``(B, C, T, H, W)``). ``weights`` maps a tag (``'imagenet'``, ``'kinetics'``) to a
    `WeightsSource`, which owns the `Preprocessing` of those weights; a plain string is
    ``WeightsSource(string)``. ``preprocessing`` is the input of random init (``weights:
    none``), of a state_dict file that is no registered entry, and of every entry that gives
    none; by default it is the ``default_weights`` entry's (else the first entry's), so a
    random network sees what its pretrained twin sees. A backbone without weights must give it.
    Read the preprocessing in use with `preprocessing_for` (or `Backbone.preprocessing`).
    ``layers`` maps intermediate layer names (torch.fx node names of the network) to their
    channel counts, for multi-layer features. ``min_frames`` is the shortest clip a segment
    model accepts; `Backbone` pads shorter clips by repeating their last frame.
    """

    name: str
    kind: BackboneKind
    feature_dim: int
    builder: Builder = field(repr=False, compare=False)
    weights: Mapping[str, WeightsSource] = field(default_factory=dict)
    preprocessing: Preprocessing | None = None
    in_channels: int = 3
    default_weights: str = "none"
    layers: Mapping[str, int] = field(default_factory=dict)
    min_frames: int = 1
    source: str = "torchvision"
    description: str = ""
    #: False where bf16/fp16 features fall outside harkit.precision.FEATURE_TOLERANCE of
    #: fp32: ``precision='auto'`` then runs this backbone in fp32.
    low_precision: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("frame", "segment"):
            raise BackboneError(f"backbone {self.name!r}: kind must be 'frame' or 'segment'")
        entries = {  # a plain string is accepted too: WeightsSource(string)
            str(tag): entry if isinstance(entry, WeightsSource) else WeightsSource(str(entry))
            for tag, entry in self.weights.items()
        }
        if self.default_weights != "none" and self.default_weights not in entries:
            raise BackboneError(
                f"backbone {self.name!r}: default_weights {self.default_weights!r} "
                f"is not one of {sorted(entries)}"
            )
        own = self.preprocessing
        if own is None:
            first = entries.get(self.default_weights) or next(iter(entries.values()), None)
            own = first.preprocessing if first is not None else None
        if own is None:
            raise BackboneError(
                f"backbone {self.name!r}: give its preprocessing (input size, mean, std), for "
                "random init and for weights that declare none"
            )
        for tag, entry in entries.items():
            if entry.preprocessing is None:
                entries[tag] = replace(entry, preprocessing=own)
        for what, prep in [("preprocessing", own)] + [
            (f"weights {tag!r}", e.preprocessing) for tag, e in entries.items()
        ]:
            assert prep is not None
            if prep.channels != self.in_channels:
                raise BackboneError(
                    f"backbone {self.name!r}: {what} has mean/std for {prep.channels} "
                    f"channels, the network takes {self.in_channels}"
                )
        object.__setattr__(self, "preprocessing", own)
        # Private copies (plain dicts keep the spec deep-copyable and picklable).
        object.__setattr__(self, "weights", entries)
        object.__setattr__(self, "layers", dict(self.layers))

    def weights_entry(self, weights: str | os.PathLike[str] | None) -> WeightsSource | None:
        """The registered entry ``weights`` names: a tag, ``'default'``, or a state_dict file
        that is a registered entry's download (its SHA-256, or the prefix in the entry's file
        name, matches). ``None`` for ``'none'`` and for any other file; an unknown tag or a
        missing file raises `WeightsLoadError`."""
        from harkit.backbones.weights import PRETRAINED_TAGS, cached_file_sha256

        text = "none" if weights is None else str(weights)
        if text == "default":
            text = self.default_weights
        if text == "none":
            return None
        if text in self.weights:
            return self.weights[text]
        if text in PRETRAINED_TAGS:
            raise WeightsLoadError(
                f"backbone {self.name!r} has no {text!r} weights; available: "
                f"{', '.join(['none', *self.weights])} or a state_dict file"
            )
        path = Path(text)
        if not path.is_file():
            raise WeightsLoadError(
                f"weights for {self.name!r} must be 'none', one of {list(self.weights)} or an "
                f"existing state_dict file; {text!r} is none of these"
            )
        hashes = {tag: e.expected_hash for tag, e in self.weights.items()}
        if any(hashes.values()):
            digest = cached_file_sha256(path)
            for tag, expected in hashes.items():
                if expected and digest.startswith(expected):
                    return self.weights[tag]
        return None

    def preprocessing_for(
        self, weights: str | os.PathLike[str] | None = "default"
    ) -> Preprocessing:
        """The input of this network with ``weights`` (a tag, ``'default'``, ``'none'`` or a
        file): the entry's preprocessing, or the spec's own for random init and other files."""
        entry = self.weights_entry(weights)
        prep = entry.preprocessing if entry is not None else self.preprocessing
        assert prep is not None  # filled in by __post_init__
        return prep

    def input_shape(
        self, num_frames: int | None = None, weights: str | os.PathLike[str] | None = "default"
    ) -> tuple[int, ...]:
        """Shape of one preprocessed sample with ``weights``: ``(C, S, S)``, or ``(C, T, S, S)``
        for segments."""
        size = self.preprocessing_for(weights).input_size
        if self.kind == "frame":
            return (self.in_channels, size, size)
        if num_frames is None:
            raise BackboneError(f"backbone {self.name!r} is a segment model: give num_frames")
        return (self.in_channels, num_frames, size, size)


_REGISTRY: dict[str, BackboneSpec] = {}

F = TypeVar("F", bound=Callable[[], BackboneSpec])


@overload
def register_backbone(obj: BackboneSpec) -> BackboneSpec: ...
@overload
def register_backbone(obj: F) -> F: ...


def register_backbone(obj):
    """Register a spec, or decorate a zero-argument function that returns one.

    The decorated function is called once, at registration, and returned unchanged.
    """
    spec = obj if isinstance(obj, BackboneSpec) else obj()
    if not isinstance(spec, BackboneSpec):
        raise BackboneError(f"register_backbone needs a BackboneSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY:
        raise BackboneError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return obj


def list_backbones(kind: BackboneKind | None = None) -> list[str]:
    """Sorted names of the registered backbones, optionally only those of one kind."""
    if kind is not None and kind not in ("frame", "segment"):
        raise BackboneError(f"kind must be 'frame' or 'segment', got {kind!r}")
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


# prefix -> resolver(rest) -> spec, for names like 'timm/convnext_tiny' that are built on
# demand; resolved specs are kept apart from the registry so list_backbones() stays the zoo.
_FAMILIES: dict[str, Callable[[str], BackboneSpec]] = {}
_RESOLVED: dict[str, BackboneSpec] = {}


def register_backbone_family(prefix: str, resolve: Callable[[str], BackboneSpec]) -> None:
    """Make every ``prefix/<model>`` name a backbone: ``resolve(model)`` builds its spec once.

    ``resolve`` raises `UnknownBackboneError` for a model it does not know.
    """
    if not prefix or "/" in prefix:
        raise BackboneError(f"a backbone family prefix must be a non-empty word, got {prefix!r}")
    if prefix in _FAMILIES:
        raise BackboneError(f"backbone family {prefix!r} is already registered")
    _FAMILIES[prefix] = resolve


@validated
def get_backbone_spec(name: BackboneName) -> BackboneSpec:
    """The spec registered under ``name``, or resolved from a family (``timm/<model>``);
    unknown names raise `UnknownBackboneError`."""
    spec = _REGISTRY.get(name) or _RESOLVED.get(name)
    if spec is not None:
        return spec
    prefix, slash, model = name.partition("/")
    if slash and model and prefix in _FAMILIES:
        spec = _FAMILIES[prefix](model)
        _RESOLVED[name] = spec
        return spec
    known = ", ".join(list_backbones())
    families = "".join(f", {p}/<model>" for p in sorted(_FAMILIES))
    raise UnknownBackboneError(f"unknown backbone {name!r}; known backbones: {known}{families}")
