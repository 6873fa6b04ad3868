"""Typed, validated configuration: YAML files, command-line overrides, saved resolved copies.

Every config section is a :class:`StrictModel` (pydantic, unknown keys forbidden). Loading
goes through :func:`load_config`, which turns validation failures into a :class:`ConfigError`
naming the file, the dotted key, what was expected and what was found.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from harkit.errors import HarkitError
from harkit.io import atomic_write_text

__all__ = [
    "ConfigError",
    "StrictModel",
    "apply_overrides",
    "atomic_write_text",
    "describe_error",
    "load_config",
    "load_yaml",
    "parse_config",
    "safe_load_bounded",
    "save_config",
]

M = TypeVar("M", bound=BaseModel)


class ConfigError(HarkitError, ValueError):
    """A config file, an override or a function's argument is malformed; the message names
    the source and the key (or the function and the argument)."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on set,
    and ``true``/``false`` is not a number (pydantic would read ``epochs: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(value, bool) else None
                if field is not None and _number_not_bool(field.annotation):
                    raise ValueError(f"{key}: expected a number, not {str(value).lower()}")
        return data


@cache
def _number_not_bool(annotation: Any) -> bool:
    """Whether ``annotation`` takes an int or a float but no bool (nor anything)."""
    leaves: list[Any] = []

    def walk(a: Any) -> None:
        origin = get_origin(a)
        if origin is Annotated:
            walk(get_args(a)[0])
        elif origin in (Union, types.UnionType):
            for arg in get_args(a):
                walk(arg)
        elif origin is Literal:
            leaves.extend(type(arg) for arg in get_args(a))
        else:
            leaves.append(a)

    walk(annotation)
    if any(leaf is bool or leaf is Any for leaf in leaves):
        return False
    return any(leaf in (int, float) for leaf in leaves)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a syntax error or a non-mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


MAX_YAML_NODES = 100_000
"""Nodes a YAML document may hold once its aliases are followed: a recipe has a few hundred,
while ten nested anchors of ten aliases each (1.4 KB of text, an "alias bomb") expand to
10^10."""


class YAMLTooLargeError(yaml.YAMLError):
    """A document past :data:`MAX_YAML_NODES` nodes once its aliases are followed."""


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts once instead of looping
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        memo[key] = 1 + sum(_expanded_nodes(child, memo) for child in children)
    return memo[key]


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that refuses, before building anything, a document of more than
    :data:`MAX_YAML_NODES` nodes once its aliases are followed (an alias counts its whole
    target each time it is used)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_nodes(node, {})
        if size > MAX_YAML_NODES:
            raise YAMLTooLargeError(
                f"{size:,} nodes once its aliases are followed (at most {MAX_YAML_NODES:,})"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # PyYAML's messages span several lines (context, mark, snippet); users get one line.
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [""])[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if isinstance(exc, yaml.constructor.ConstructorError):
        problem += " (harkit reads plain YAML: no !!python tags)"
    return f"{problem}{where}"


def _list_index(items: list[Any], key: str, dotted: str, where: str, source: str) -> int:
    # Lists are reached by position (input.features.0.weights); no negative or new indices.
    if not items:
        raise ConfigError(f"{source}: cannot set '{dotted}': '{where}' is an empty list")
    if not key.isdigit():
        raise ConfigError(
            f"{source}: cannot set '{dotted}': '{where}' is a list, index it with 0..{len(items) - 1}"
        )
    index = int(key)
    if index >= len(items):
        raise ConfigError(
            f"{source}: cannot set '{dotted}': index {index} is out of range, '{where}' has "
            f"{len(items)} item{'s' if len(items) != 1 else ''}"
        )
    return index


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node: Any = data  # a dict or a list
    for depth, key in enumerate(keys):
        slot: int | str = key
        if isinstance(node, list):
            slot = _list_index(node, key, dotted, ".".join(keys[:depth]), source)
        if depth == len(keys) - 1:
            node[slot] = value
            return
        child = node[slot] if isinstance(node, list) else node.get(key)
        if child is None:
            child = node[slot] = {}
        elif not isinstance(child, dict | list):
            where = ".".join(keys[: depth + 1])
            raise ConfigError(
                f"{source}: cannot set '{dotted}': '{where}' is not a mapping or a list"
            )
        node = child


def apply_overrides(
    data: Mapping[str, Any], overrides: Iterable[str], source: str = "override"
) -> dict[str, Any]:
    """Return a deep copy of ``data`` with ``key.sub=value`` overrides applied.

    Values are parsed as YAML, so ``lr=1e-3`` is a float, ``layers=[1,2]`` a list and
    ``name=gru`` a string. A number indexes a list: ``input.features.0.weights=PATH``.
    """
    result = yaml.safe_load(yaml.safe_dump(dict(data)))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source}: override '{item}' must look like key.sub=value")
        try:
            value = safe_load_bounded(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            shown = item if len(item) <= MAX_SHOWN_VALUE else f"{key}=..."
            raise ConfigError(
                f"{source}: override '{shown}': value is not valid YAML: {_yaml_problem(exc)}"
            ) from None
        _set_dotted(result, key, value, source)
    return result


def describe_error(error: Mapping[str, Any], noun: str = "key") -> str:
    """One pydantic error as ``<noun> '<dotted.loc>': <what is expected>, got <value>``: the
    value shortened to one line, however large (``noun``: a config ``key``, an ``argument``)."""
    key = ".".join(str(part) for part in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden":
        return f"{noun} '{key}': unknown {noun}"
    if error["type"] == "missing":
        return f"{noun} '{key}': required {noun} is missing"
    msg = error["msg"][:1].lower() + error["msg"][1:]  # 'Input should ...' mid-sentence
    found = error.get("input")
    if isinstance(found, Mapping):  # a whole section (a model validator): too long to echo
        return f"{noun} '{key}': {msg}"
    shown = re.sub(r"\s*\n\s*", " ", repr(found))  # e.g. an array's rows
    if len(shown) > MAX_SHOWN_VALUE:
        shown = f"{shown[: MAX_SHOWN_VALUE - 30]}... ({len(shown):,} characters)"
    return f"{noun} '{key}': {msg}, got {shown}"


MAX_SHOWN_VALUE = 200
"""Characters of a bad value an error message quotes."""


def parse_config(model: type[M], data: Mapping[str, Any], source: str) -> M:
    """Validate ``data`` against ``model``; errors name ``source`` and each bad key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        details = "; ".join(describe_error(err) for err in exc.errors())
        raise ConfigError(f"{source}: invalid config for {model.__name__}: {details}") from None


def load_config(model: type[M], path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> M:
    """Load a YAML file into ``model`` with ``key=value`` overrides applied on top."""
    data = apply_overrides(load_yaml(path), overrides, source=str(path))
    return parse_config(model, data, source=str(path))


def save_config(config: BaseModel, path: str | os.PathLike[str]) -> Path:
    """Save the resolved config as YAML (atomically), next to the outputs it produced."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return atomic_write_text(path, text)
