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
from typing import TYPE_CHECKING, Annotated, Any

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
    "PositiveFinite",
    "RecipeArg",
    "RunFolder",
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


def _recipe(value: object) -> Any:
    from harkit.models.recipe import Recipe

    if isinstance(value, Recipe):
        return value
    text = _fspath(value)
    if text is None:
        raise _refused("a recipe name, a YAML path or a Recipe")
    return value if isinstance(value, str) else Path(text)  # a name stays a name


def _dataset(value: object) -> Any:
    from harkit.data.datasets import DatasetConfig

    if isinstance(value, DatasetConfig):
        return value
    text = _fspath(value)
    if text is None:
        raise _refused("a DatasetConfig, a video folder or a CSV manifest path")
    return Path(text)


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


def _overrides(value: object) -> list[str]:
    if isinstance(value, str):  # one override, not one per character
        return [value]
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return list(value)
    raise _refused("'key=value' strings (a list, or one string)")


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


def _device(value: object) -> str:
    from harkit.infer.device import check_device

    # not a ValueError: pydantic lets its InferenceError (which names what this machine
    # has) through as it is
    return check_device(value)


def _backbone_name(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _refused("a backbone name (see harkit.list_backbones())")


# What a caller may pass (for type checkers and IDEs), and at run time the same with the
# validator that checks it and hands the function a plain value (a path becomes a Path).
if TYPE_CHECKING:
    import numpy as np
    from torch.utils.data import Dataset

    from harkit.data.datasets import DatasetConfig
    from harkit.models.recipe import Recipe

    PathArg = str | os.PathLike[str]
    RunFolder = str | os.PathLike[str]
    RecipeArg = str | os.PathLike[str] | Recipe
    DatasetArg = str | os.PathLike[str] | DatasetConfig
    EvalDataset = str | os.PathLike[str] | DatasetConfig | Dataset
    Overrides = str | Sequence[str]
    VideoArg = str | os.PathLike[str] | np.ndarray
    VideoPaths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
    Device = str
    BackboneName = str
else:
    PathArg = Annotated[Path, _path("a path (str or Path)")]
    RunFolder = Annotated[Path, _path("a run folder path (str or Path)")]
    # a built-in recipe name (str), a YAML path, or a Recipe
    RecipeArg = Annotated[Any, PlainValidator(_recipe)]
    # a DatasetConfig, or a video folder / CSV manifest path
    DatasetArg = Annotated[Any, PlainValidator(_dataset)]
    # DatasetArg, or a ready test torch Dataset of clip dicts
    EvalDataset = Annotated[Any, PlainValidator(_eval_dataset)]
    Overrides = Annotated[list[str], PlainValidator(_overrides)]
    # a video file or frame folder path (a str is kept as given), or uint8 (N, H, W, 3) frames
    # (their shape is checked where they are read)
    VideoArg = Annotated[Any, PlainValidator(_video)]
    VideoPaths = Annotated[list[str], PlainValidator(_video_paths)]
    # cpu, cuda, cuda:N or mps, one this machine has
    Device = Annotated[str, PlainValidator(_device)]
    BackboneName = Annotated[str, PlainValidator(_backbone_name)]

PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A finite number > 0 (seconds, frames per second; an int is fine)."""


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
        given = {name: _plain_values(value) for name, value in given.items()}
        try:
            return validate(**given)
        except ValidationError as exc:
            raise _argument_error(func.__qualname__, exc, annotations) from None

    return check


def _plain_values(value: Any) -> Any:
    """NumPy integers (``labels.max() + 1``, ``np.arange`` items) as Python ints and a
    ``range`` as a list, for the strict checks; bools stay bools (refused as ints)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, int):
        return int(value)
    if isinstance(value, range):
        return list(value)
    if isinstance(value, list | tuple) and any(
        isinstance(item, numbers.Integral) and not isinstance(item, int) for item in value
    ):
        return type(value)(_plain_values(item) for item in value)
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
