"""Heads and end-to-end networks by name: each ``type`` has its recipe config and a builder.

A recipe's ``head:`` (and ``network:``) section is validated as a discriminated union on
``type`` over the registered configs, so a type takes only its own keys, and the builder
(:func:`harkit.models.builder.build_model`) looks the type up here. The built-in heads and
networks (:mod:`harkit.models.builtin`) register themselves the way a user's head does:

>>> from torch import nn
>>> import harkit
>>> class TinyHeadConfig(harkit.HeadConfigBase):
...     width: int = 16                      # the head's own keys, validated at load
>>> @harkit.register_head("tiny", config=TinyHeadConfig)
... def build_tiny(config, input_dims, num_classes):  # -> forward(x, lengths) -> logits
...     return TinyHead(sum(input_dims), config.width, num_classes)

A recipe then says ``head: {type: tiny, width: 32}`` (``norm: layer`` too: every head takes
it); a key the config does not declare, or an unregistered type, is refused when the recipe
loads, in one line naming the key. Register before loading a recipe (or a run folder) that
uses the head.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field, ValidationError, WrapValidator, create_model
from pydantic_core import PydanticCustomError

from harkit.config import StrictModel
from harkit.errors import HarkitError

if TYPE_CHECKING:
    from torch import nn

    from harkit.models.recipe import Recipe

__all__ = [
    "HeadConfigBase",
    "HeadSpec",
    "NetworkConfigBase",
    "NetworkSpec",
    "RegistryError",
    "get_head_spec",
    "get_network_spec",
    "head_section",
    "list_heads",
    "list_networks",
    "network_section",
    "parse_head_config",
    "parse_network_config",
    "register_head",
    "register_network",
    "section_keys",
]


class RegistryError(HarkitError, ValueError):
    """A head or network registered twice or wrongly, or looked up under an unknown name."""


class HeadConfigBase(StrictModel):
    """Base of every head's recipe config (the ``head:`` section).

    ``type`` is the registered name (:func:`register_head` pins it to ``Literal[name]`` when
    a subclass leaves it open); subclasses declare the head's own keys, and any other key is
    refused. ``norm`` is every head's: the builder wraps the head, whatever its type.
    """

    type: str
    norm: Literal["none", "layer"] = "none"
    """``layer``: layer-normalise each feature source per step before the head (and before
    centering), so sources of different scale fuse on one footing."""


class NetworkConfigBase(StrictModel):
    """Base of every end-to-end network's recipe config (the ``network:`` section)."""

    type: str


HeadBuilder = Callable[[Any, Sequence[int], int], "nn.Module"]
"""``builder(config, input_dims, num_classes)``: ``input_dims`` has one size per feature
source, in the order they are concatenated along D; the module maps ``(x, lengths)`` with
``x: (B, T, sum(input_dims))`` to logits ``(B, num_classes)``."""

NetworkBuilder = Callable[[Any, "Recipe", int], "nn.Module"]
"""``builder(config, recipe, num_classes)``: a module mapping ``(clips, lengths)`` with clips
``(B, T, 3, H, W)`` to logits; a network that ``takes_head`` builds ``recipe.head`` with
:func:`harkit.models.builder.build_head`."""

Preprocessing = Callable[[Any], "tuple[int, tuple[float, ...], tuple[float, ...]]"]


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: its name, recipe config class, builder and number of inputs."""

    name: str
    config: type[HeadConfigBase]
    builder: HeadBuilder = field(repr=False, compare=False)
    inputs: int | None = None
    """Feature sources the head takes (``two_stream``: 2); None: any number."""


def _scratch_preprocessing(config: Any) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    return config.size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class NetworkSpec:
    """A registered end-to-end network: name, recipe config class and builder.

    ``takes_head``: the recipe gives the network a ``head:`` (``crnn``) rather than none.
    ``preprocessing(config)``: ``(input_size, mean, std)`` of its clips; the default reads
    ``config.size`` and scales pixels to [-1, 1] (networks trained from scratch).
    """

    name: str
    config: type[NetworkConfigBase]
    builder: NetworkBuilder = field(repr=False, compare=False)
    takes_head: bool = False
    preprocessing: Preprocessing = field(default=_scratch_preprocessing, repr=False, compare=False)


F = TypeVar("F", bound=Callable[..., Any])


class _Registry:
    """name -> spec for one recipe section (``head`` or ``network``)."""

    def __init__(self, section: str, base: type[StrictModel], default: str | None) -> None:
        self.section = section
        self.base = base
        self.default = default  # the type of a section that names none
        self.specs: dict[str, Any] = {}
        self.listeners: list[Callable[[], None]] = []

    def check_free(self, name: str) -> None:
        if name in self.specs:
            raise RegistryError(f"{self.section} type {name!r} is already registered")

    def add(self, spec: HeadSpec | NetworkSpec) -> None:
        self.check_free(spec.name)
        self.specs[spec.name] = spec
        if spec.config.__qualname__ == self.pinned_name(spec.name):
            globals()[spec.config.__qualname__] = spec.config  # pickle finds it here
        self.changed()

    def remove(self, name: str) -> None:
        if self.specs.pop(name, None) is not None:
            globals().pop(self.pinned_name(name), None)
            self.changed()

    def pinned_name(self, name: str) -> str:
        return f"_pinned_{self.section}_{name}"

    def changed(self) -> None:
        for listener in self.listeners:
            listener()

    def get(self, name: str) -> Any:
        spec = self.specs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise RegistryError(
                f"unknown {self.section} type {name!r}; registered: {', '.join(self.names())}"
            )
        return spec

    def names(self) -> list[str]:
        return sorted(self.specs)

    def allowed(self) -> str:
        quoted = [repr(n) for n in self.names()]
        return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    def pinned(self, name: str, config: type[StrictModel] | None) -> type[StrictModel]:
        """``config`` with ``type: Literal[name]`` (a subclass pins it when left open)."""
        self.check_free(name)
        config = self.base if config is None else config
        if not (isinstance(config, type) and issubclass(config, self.base)):
            raise RegistryError(
                f"{self.section} {name!r}: config must subclass {self.base.__name__}, got {config!r}"
            )
        annotation = config.model_fields["type"].annotation
        if annotation is str:
            title = config.__name__ if config is not self.base else f"{name.title()}Config"
            pinned: type[StrictModel] = create_model(  # type: ignore[call-overload]
                title,
                __base__=config,
                __module__=__name__,
                type=(Literal[name], name),  # type: ignore[valid-type]
            )
            # named apart from the user's class, so that pickle finds this one (see add)
            pinned.__qualname__ = self.pinned_name(name)
            return pinned
        if get_origin(annotation) is not Literal or get_args(annotation) != (name,):
            raise RegistryError(
                f"{self.section} {name!r}: {config.__name__}.type must be Literal[{name!r}] "
                f"(or left to {self.base.__name__}'s, which register pins), got {annotation!r}"
            )
        return config

    def section_type(self) -> Any:
        """``Annotated[Union[configs], Field(discriminator='type'), <one-line errors>]``."""
        configs = tuple(spec.config for spec in self.specs.values())
        union = Union[configs]  # type: ignore[valid-type]  # noqa: UP007
        tagged = Annotated[union, Field(discriminator="type")] if len(configs) > 1 else union
        return Annotated[tagged, WrapValidator(self._validate)]

    def keys(self, name: str) -> list[str] | None:
        spec = self.specs.get(name) if isinstance(name, str) else None
        return None if spec is None else list(spec.config.model_fields)

    # --- validation: the type's own errors, located at the section's keys ------------------

    def _validate(self, value: Any, handler: Callable[[Any], Any]) -> Any:
        if isinstance(value, Mapping):
            value = dict(value)
            if "type" not in value:
                if self.default is None:
                    raise _errors([("missing", "Field required", ("type",), value)])
                value["type"] = self.default
            kind = value["type"]
            if not isinstance(kind, str) or kind not in self.specs:
                raise _errors(
                    [
                        (
                            "literal_error",
                            f"Input should be {self.allowed()} (a registered {self.section} type)",
                            ("type",),
                            kind,
                        )
                    ]
                )
        try:
            return handler(value)
        except ValidationError as exc:
            raise _errors([self._relocate(err) for err in exc.errors()]) from None

    def _relocate(self, err: Any) -> tuple[str, str, tuple[Any, ...], Any]:
        # pydantic locates a member's errors under its tag (head.two_stream.pooling): drop
        # it, so the key is the one a recipe or an override writes, and say the type instead.
        loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
        tag = loc[0] if loc and isinstance(loc[0], str) and loc[0] in self.specs else None
        if tag is None:
            return kind, msg, loc, err.get("input")
        loc = loc[1:]
        if kind == "extra_forbidden":
            keys = ", ".join(self.specs[tag].config.model_fields)
            kind, msg = (
                "unknown_key",
                f"Unknown key for {self.section} type '{tag}' (its keys: {keys})",
            )
        elif kind == "literal_error":
            msg = f"{msg} for {self.section} type '{tag}'"
        return kind, msg, loc, err.get("input")


def _errors(items: Sequence[tuple[str, str, tuple[Any, ...], Any]]) -> ValidationError:
    """A ValidationError of these ``(type, message, loc, input)``; raised inside a validator,
    pydantic puts each line under the section's location."""
    return ValidationError.from_exception_data(
        "section",
        [
            {"type": PydanticCustomError(kind, msg), "loc": loc, "input": value}
            for kind, msg, loc, value in items
        ],
    )


_HEADS = _Registry("head", HeadConfigBase, default="recurrent")
_NETWORKS = _Registry("network", NetworkConfigBase, default=None)


def register_head(
    name: str,
    builder: F | None = None,
    *,
    config: type[HeadConfigBase] | None = None,
    inputs: int | None = None,
) -> Any:
    """Register the head ``name``: ``register_head(name, builder, config=...)``, or as a
    decorator, ``@register_head(name, config=...)`` over the builder (returned unchanged).

    ``builder(config, input_dims, num_classes) -> nn.Module`` gets the validated config, one
    feature size per source and the class count; the module maps ``(x, lengths)``,
    ``x: (B, T, sum(input_dims))``, to logits (``harkit.heads`` has building blocks).
    ``config``: a :class:`HeadConfigBase` subclass declaring the head's keys (default: none
    but ``type`` and ``norm``); ``inputs``: the number of feature sources the head takes
    (None: any), checked when a recipe loads. Names are unique: registering one twice is an
    error, as for backbones.
    """
    if builder is None:

        def decorate(fn: F) -> F:
            register_head(name, fn, config=config, inputs=inputs)
            return fn

        return decorate
    _check_name(name, "head")
    if not callable(builder):
        raise RegistryError(f"head {name!r}: builder must be callable, got {builder!r}")
    if inputs is not None and (
        isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 1
    ):
        raise RegistryError(
            f"head {name!r}: inputs must be a positive integer or None, got {inputs!r}"
        )
    pinned = _HEADS.pinned(name, config)
    _HEADS.add(HeadSpec(name, pinned, builder, inputs))  # type: ignore[arg-type]
    return builder


def register_network(
    name: str,
    builder: F | None = None,
    *,
    config: type[NetworkConfigBase] | None = None,
    takes_head: bool = False,
    preprocessing: Preprocessing | None = None,
) -> Any:
    """Register the end-to-end network ``name`` (as :func:`register_head`; see
    :class:`NetworkSpec` for ``takes_head`` and ``preprocessing``). Without
    ``preprocessing`` the config needs a ``size`` key: clips are ``size`` pixels square,
    scaled to [-1, 1]."""
    if builder is None:

        def decorate(fn: F) -> F:
            register_network(
                name, fn, config=config, takes_head=takes_head, preprocessing=preprocessing
            )
            return fn

        return decorate
    _check_name(name, "network")
    if not callable(builder):
        raise RegistryError(f"network {name!r}: builder must be callable, got {builder!r}")
    pinned = _NETWORKS.pinned(name, config)
    if preprocessing is None and "size" not in pinned.model_fields:
        raise RegistryError(f"network {name!r}: give preprocessing=, or a 'size' key in its config")
    _NETWORKS.add(
        NetworkSpec(
            name,
            pinned,
            builder,
            takes_head,  # type: ignore[arg-type]
            preprocessing or _scratch_preprocessing,
        )
    )
    return builder


def _check_name(name: object, section: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise RegistryError(f"a {section} name must be a word (letters, digits, '_'), got {name!r}")


def _unregister_head(name: str) -> None:
    """Forget a head (tests clean up after themselves with it)."""
    _HEADS.remove(name)


def get_head_spec(name: str) -> HeadSpec:
    """The head registered as ``name``; unknown names raise :class:`RegistryError`."""
    return _HEADS.get(name)  # type: ignore[no-any-return]


def get_network_spec(name: str) -> NetworkSpec:
    """The network registered as ``name``; unknown names raise :class:`RegistryError`."""
    return _NETWORKS.get(name)  # type: ignore[no-any-return]


def list_heads() -> list[str]:
    """Sorted names of the registered heads (the values ``head.type`` takes)."""
    return _HEADS.names()


def list_networks() -> list[str]:
    """Sorted names of the registered end-to-end networks (``network.type``)."""
    return _NETWORKS.names()


def head_section() -> Any:
    """The annotation of a recipe's ``head`` section: the registered configs, by ``type``."""
    return _HEADS.section_type() | None


def network_section() -> Any:
    """The annotation of a recipe's ``network`` section."""
    return _NETWORKS.section_type() | None


def section_keys(section: str, name: Any) -> list[str] | None:
    """The keys the ``section`` (``head``/``network``) type ``name`` takes; None if unknown."""
    return {"head": _HEADS, "network": _NETWORKS}[section].keys(name)


def section_default(section: str) -> str | None:
    """The type of a ``section`` that names none (``recurrent`` for heads)."""
    return {"head": _HEADS, "network": _NETWORKS}[section].default


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever a head or network type is registered or removed."""
    _HEADS.listeners.append(listener)
    _NETWORKS.listeners.append(listener)


def parse_head_config(data: Mapping[str, Any], source: str = "head") -> HeadConfigBase:
    """A ``head:`` mapping validated as a recipe validates it (``type`` defaults to
    ``recurrent``); errors are one-line :class:`~harkit.config.ConfigError`\\ s."""
    return _parse(_HEADS, data, source)  # type: ignore[no-any-return]


def parse_network_config(data: Mapping[str, Any], source: str = "network") -> NetworkConfigBase:
    """A ``network:`` mapping validated as a recipe validates it."""
    return _parse(_NETWORKS, data, source)  # type: ignore[no-any-return]


def _parse(registry: _Registry, data: Mapping[str, Any], source: str) -> Any:
    from harkit.config import parse_config

    model = create_model(
        registry.section, __base__=StrictModel, **{registry.section: (registry.section_type(), ...)}
    )
    return getattr(parse_config(model, {registry.section: data}, source), registry.section)


# The built-in heads and networks register themselves through this module, as a user's would;
# importing them here means every lookup sees them, whichever module was imported first.
import harkit.models.builtin  # noqa: E402, F401
