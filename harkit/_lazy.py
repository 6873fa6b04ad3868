"""Lazy package exports (PEP 562): names load their module on first use; argument checks
(:func:`validated`) are built on a function's first call.

Light commands (``harkit --help``, dataset indexes) then do not pay for torch, torchvision,
scikit-learn or pydantic imports they never use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``name`` from ``exports[name]`` (a module path)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__


def validated(func: F) -> F:
    """``func`` with its arguments checked against its annotations by pydantic (strictly:
    see :mod:`harkit.arguments`); a bad one is a one-line :class:`~harkit.config.ConfigError`.

    The check is built on the first call: decorating costs no import, and annotations may
    name types their module imports only for type checkers.
    """
    check: Callable[..., dict[str, Any]] | None = None

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal check
        if check is None:
            from harkit.arguments import argument_checker

            check = argument_checker(func)
        return func(**check(*args, **kwargs))

    return cast(F, call)
