"""Bounded value types shared by the recipe sections and the head / network configs.

Ceilings on sizes and loop lengths: a value past them is a typo (``head.hidden=1e11``), and
is refused when the recipe loads, before anything is allocated or trained.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

__all__ = ["MAX_UNITS", "Count", "Dropout", "Hidden", "Layers", "Sizes", "Units"]

MAX_UNITS = 65536
Units = Annotated[int, Field(ge=1, le=MAX_UNITS)]
Layers = Annotated[int, Field(ge=1, le=16)]
Sizes = Annotated[list[Units], Field(max_length=16)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Count = Annotated[int, Field(ge=1, le=100_000)]
"""Epochs, patience, step size."""


_UNITS = TypeAdapter(Units)


def _hidden_sizes(value: Any) -> int | list[int]:
    # One error for both shapes (pydantic's union error would report each member) and the
    # same integer rules as every other size.
    try:
        if isinstance(value, list) and value:
            return [_UNITS.validate_python(v) for v in value]
        return _UNITS.validate_python(value)
    except ValidationError:
        raise PydanticCustomError(
            "hidden_sizes",
            f"expected an integer from 1 to {MAX_UNITS} or a non-empty list of them",
        ) from None


Hidden = Annotated[int | list[int], BeforeValidator(_hidden_sizes)]
"""Units of every layer, or one size per layer."""
