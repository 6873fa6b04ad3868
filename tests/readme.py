"""The README's code blocks that the test suite runs as written, found by a marker line."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_block(marker: str, language: str) -> str:
    """The one ```language block of README.md whose first line is ``marker``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = [
        b for b in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S) if b.startswith(marker)
    ]
    assert len(found) == 1, f"README.md: expected one ```{language} block starting {marker!r}"
    return found[0]
