"""Argument rules of harkit's public functions, checked by pydantic (``validate_call``).

A function decorated with :func:`harkit._lazy.validated` declares its rules in its signature
(``num_classes: Annotated[int, Field(ge=2)]``, ``run_dir: RunFolder``); a bad argument is a
one-line :class:`~harkit.config.ConfigError` naming the function, the argument, what it takes
and what it got. Checks are strict: an int is not a bool, a float or ``'3'``; a NumPy integer
is one.

The validator is built on a function's first call, so ``import harkit`` loads neither
pydantic nor this module: light modules import these types under ``TYPE_CHECKING`` and the
annotations are evaluated then, in the function's module and in this one.
"""

from __future__ import annotations

import inspect
import numbers
import os
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PlainValidator, ValidationError, validate_call
from pydantic_core import ErrorDetails, PydanticCustomError

from harkit.config import ConfigError, describe_error

__all__ = [
    "BackboneName",
    "DatasetArg",
    "Device",
    "EvalDataset",
    "Overrides",
    "PathArg",
    "RecipeArg",
    "RunFolder",
    "Seconds",
    "VideoArg",
    "VideoPaths",
    "argument_checker",
]

STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)
"""No coercion (True is not 1, '3' is not 3); classes pydantic does not know (numpy arrays,
torch devices) by isinstance."""


def _refused(expected: str) -> PydanticCustomError:
    return PydanticCustomError("argument_type", "expected {expected}", {"expected": expected})


def _fspath(value: object) -> str | None:
    """``value`` as a path string when it is a non-blank str or os.PathLike, else None."""
    text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    return text if isinstance(text, str) and text.strip() else None


def _path(expected: str) -> PlainValidator:
    def check(value: object) -> Path:
        text = _fspath(value)
        if text is None:
            raise _refused(expected)
        return Path(text)

    return PlainValidator(check)


PathArg = Annotated[Path, _path("a path (str or Path)")]
RunFolder = Annotated[Path, _path("a run folder path (str or Path)")]


def _recipe(value: object) -> Any:
    from harkit.models.recipe import Recipe

    if isinstance(value, Recipe):
        return value
    text = _fspath(value)
    if text is None:
        raise _refused("a recipe name, a YAML path or a Recipe")
    return value if isinstance(value, str) else Path(text)  # a name stays a name


RecipeArg = Annotated[Any, PlainValidator(_recipe)]
"""A built-in recipe name (str), a YAML path, or a :class:`~harkit.models.recipe.Recipe`."""


def _dataset(value: object) -> Any:
    from harkit.data.datasets import DatasetConfig

    if isinstance(value, DatasetConfig):
        return value
    text = _fspath(value)
    if text is None:
        raise _refused("a DatasetConfig, a video folder or a CSV manifest path")
    return Path(text)


DatasetArg = Annotated[Any, PlainValidator(_dataset)]
"""A :class:`~harkit.data.datasets.DatasetConfig`, or a video folder / CSV manifest path."""


def _eval_dataset(value: object) -> Any:
    from torch.utils.data import Dataset  # evaluation loads torch anyway

    if isinstance(value, Dataset):
        return value
    try:
        return _dataset(value)
    except PydanticCustomError:
        raise _refused(
            "a DatasetConfig, a video folder, a CSV manifest path or a torch Dataset"
        ) from None


EvalDataset = Annotated[Any, PlainValidator(_eval_dataset)]
""":data:`DatasetArg`, or a ready test ``torch.utils.data.Dataset`` of clip dicts."""


def _overrides(value: object) -> list[str]:
    if isinstance(value, str):  # one override, not one per character
        return [value]
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return list(value)
    raise _refused("'key=value' strings (a list, or one string)")


Overrides = Annotated[list[str], PlainValidator(_overrides)]


def _video(value: object) -> Any:
    import numpy as np  # loaded with any model

    if isinstance(value, np.ndarray):
        return value
    text = _fspath(value)
    if text is None:
        raise _refused(
            "a video file or frame folder path (str or Path) or a uint8 (N, H, W, 3) array; "
            "for many videos use Recognizer.predict_many"
        )
    return value if isinstance(value, str) else Path(text)


VideoArg = Annotated[Any, PlainValidator(_video)]
"""A video file or frame folder path (str, kept as given, or Path), or a ``uint8
(N, H, W, 3)`` numpy array of all frames (its shape is checked where it is read)."""


def _video_paths(value: object) -> list[str]:
    import numpy as np

    one = _fspath(value)
    if one is not None:  # one path is one video
        return [one]
    if isinstance(value, Iterable) and not isinstance(value, str | os.PathLike | np.ndarray):
        paths = [_fspath(item) for item in value]
        if all(paths):
            return typing.cast(list[str], paths)
    raise _refused("video paths (a list of str or Path, or one path)")


VideoPaths = Annotated[list[str], PlainValidator(_video_paths)]


def _device(value: object) -> str:
    from harkit.infer.device import check_device

    # not a ValueError: pydantic lets its InferenceError (which names what this machine
    # has) through as it is
    return check_device(value)


Device = Annotated[str, PlainValidator(_device)]
"""``cpu``, ``cuda``, ``cuda:N`` or ``mps``, one this machine has."""


def _backbone_name(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _refused("a backbone name (see harkit.list_backbones())")


BackboneName = Annotated[str, PlainValidator(_backbone_name)]

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A finite number of seconds > 0 (an int is fine)."""


def argument_checker(func: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """``check(*args, **kwargs)``: the arguments of a call of ``func`` by name (``**options``
    spread out) and validated against its annotations, for ``func(**check(...))``; bad ones
    raise a :class:`ConfigError`, a missing or unknown one a ``TypeError`` as without checks.
    ``func`` has no positional-only parameters and no ``*args``."""
    signature = inspect.signature(func)
    spread = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
    annotations = {k: v for k, v in func.__annotations__.items() if k != "return"}

    def arguments(**values: Any) -> dict[str, Any]:
        return values

    # validate_call reads the signature and the annotations, resolved here: the function's
    # module may import the types it names under TYPE_CHECKING only (harkit/__init__.py)
    arguments.__signature__ = signature.replace(return_annotation=inspect.Signature.empty)
    arguments.__annotations__ = annotations
    namespace = {**globals(), **func.__globals__}
    arguments.__annotations__ = typing.get_type_hints(arguments, namespace, include_extras=True)
    validate = validate_call(config=STRICT)(arguments)

    def check(*args: Any, **kwargs: Any) -> dict[str, Any]:
        given = signature.bind(*args, **kwargs).arguments
        for name in spread:
            given.update(given.pop(name, {}))
        given = {name: _plain_ints(value) for name, value in given.items()}
        try:
            return validate(**given)
        except ValidationError as exc:
            raise _argument_error(func.__qualname__, exc, annotations) from None

    return check


def _plain_ints(value: Any) -> Any:
    """NumPy integers (``labels.max() + 1``, ``np.arange`` items) as Python ints, for the
    strict int checks; bools stay bools (refused as ints)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, int):
        return int(value)
    if isinstance(value, list | tuple) and any(
        isinstance(item, numbers.Integral) and not isinstance(item, int) for item in value
    ):
        return type(value)(_plain_ints(item) for item in value)
    return value


def _argument_error(
    where: str, exc: ValidationError, annotations: Mapping[str, Any]
) -> ConfigError:
    """One line for all bad arguments: ``where: argument 'name': expected ..., got ...``."""
    errors: dict[tuple[Any, ...], list[ErrorDetails]] = {}
    for error in exc.errors():  # list positions stay in the location, union member tags go
        loc = (error["loc"][0], *(part for part in error["loc"][1:] if isinstance(part, int)))
        errors.setdefault(loc, []).append(error)
    parts = []
    for loc, found in errors.items():
        first: dict[str, Any] = {**found[0], "loc": loc}
        if len(found) > 1:  # each member of a union complains: say the annotation once
            first["msg"] = f"expected {annotations.get(str(loc[0]), 'another value')}"
        parts.append(describe_error(first, noun="argument"))
    return ConfigError(f"{where}: {'; '.join(parts)}")
