"""Markdown and JSON text shared by harkit's reports.

Units: every metric in a Markdown report table is a percentage (its header says ``(%)``);
JSON and CSV files keep fractions (0-1), as :class:`~harkit.evaluate.Metrics` holds them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from harkit.evaluate.errors import EvaluationError

__all__ = ["check_file_name", "json_text", "md_table", "percent_number", "percent_text"]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def percent_text(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def percent_number(value: float) -> str:
    """A fraction as a percentage without the sign, for tables whose header gives the unit."""
    return f"{100.0 * value:.2f}"


def _cell(text: Any) -> str:
    """Markdown table cell: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"


def check_file_name(name: str, what: str) -> str:
    """``name`` if it can name report files (letters, digits, '.', '_', '-'), else one line."""
    if not _SAFE_NAME.match(name):
        raise EvaluationError(
            f"{what} {name!r}: expected letters, digits, '.', '_' or '-' (it names files)"
        )
    return name
