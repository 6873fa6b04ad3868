"""`BackboneSpec` and the backbone registry (name -> spec)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar, overload

from harkit.backbones.errors import BackboneError, UnknownBackboneError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "BackboneKind",
    "BackboneSpec",
    "Builder",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
    "register_backbone_family",
]

BackboneKind = Literal["frame", "segment"]

# builder(spec, pretrained_tag, state_dict) -> network mapping a batch to (B, feature_dim).
# At most one of pretrained_tag / state_dict is given; with neither the weights are random.
Builder = Callable[["BackboneSpec", "str | None", "Mapping[str, torch.Tensor] | None"], "nn.Module"]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build a feature extractor and to prepare its input.

    ``kind`` is ``'frame'`` (2D CNN, input ``(B, C, H, W)``) or ``'segment'`` (3D CNN, input
    ``(B, C, T, H, W)``). ``weights`` maps a tag (``'imagenet'``, ``'kinetics'``) to the source
    the builder understands (a torchvision weights enum name or a timm pretrained tag).
    ``layers`` maps intermediate layer names (torch.fx node names of the network) to their
    channel counts, for multi-layer features. ``min_frames`` is the shortest clip a segment
    model accepts; `Backbone` pads shorter clips by repeating their last frame.
    """

    name: str
    kind: BackboneKind
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    feature_dim: int
    builder: Builder = field(repr=False, compare=False)
    in_channels: int = 3
    weights: Mapping[str, str] = field(default_factory=dict)
    default_weights: str = "none"
    layers: Mapping[str, int] = field(default_factory=dict)
    resize_size: int | None = None
    min_frames: int = 1
    source: str = "torchvision"
    description: str = ""
    #: False where bf16/fp16 features fall outside harkit.precision.FEATURE_TOLERANCE of
    #: fp32: ``precision='auto'`` then runs this backbone in fp32.
    low_precision: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("frame", "segment"):
            raise BackboneError(f"backbone {self.name!r}: kind must be 'frame' or 'segment'")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise BackboneError(
                f"backbone {self.name!r}: mean/std need {self.in_channels} values "
                f"(got {len(self.mean)} / {len(self.std)})"
            )
        if self.default_weights != "none" and self.default_weights not in self.weights:
            raise BackboneError(
                f"backbone {self.name!r}: default_weights {self.default_weights!r} "
                f"is not one of {sorted(self.weights)}"
            )
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        # Private copies (plain dicts keep the spec deep-copyable and picklable).
        object.__setattr__(self, "weights", dict(self.weights))
        object.__setattr__(self, "layers", dict(self.layers))

    def input_shape(self, num_frames: int | None = None) -> tuple[int, ...]:
        """Shape of one preprocessed sample: ``(C, S, S)`` or ``(C, T, S, S)`` for segments."""
        size = self.input_size
        if self.kind == "frame":
            return (self.in_channels, size, size)
        if num_frames is None:
            raise BackboneError(f"backbone {self.name!r} is a segment model: give num_frames")
        return (self.in_channels, num_frames, size, size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a float batch in [0, 1] (channels at dim 1) with this spec's mean/std."""
        import torch

        if x.ndim < 3 or x.shape[1] != self.in_channels:
            raise BackboneError(
                f"backbone {self.name!r} expects {self.in_channels} channels at dim 1, "
                f"got shape {tuple(x.shape)}"
            )
        view = (1, self.in_channels) + (1,) * (x.ndim - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(view)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(view)
        return (x - mean) / std


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


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec registered under ``name``, or resolved from a family (``timm/<model>``);
    unknown names raise `UnknownBackboneError`."""
    if not isinstance(name, str):
        raise UnknownBackboneError(
            f"name: expected a backbone name (see harkit.list_backbones()), got "
            f"{type(name).__name__} {name!r}"
        )
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
