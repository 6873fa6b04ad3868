"""Every command block of README.md runs in a test: a ```bash / ```python block, or an
unlabelled one holding a command, starts with a marker line ``# harkit-readme-...`` that a
test file names. Output shown in a block of its own (```text, or unlabelled without a
command) is checked by the test of the block that prints it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.readme import REPO

THIS = Path(__file__).resolve()
LABELLED = {"bash", "sh", "shell", "console", "python"}
# a line that runs something: a command a README block would start a line with
COMMAND = re.compile(
    r"^\s*(?:\$ )?(?:harkit|python|make|torchrun|srun|pip|bash|[A-Z_]+=\S*)(?:\s|$)"
)
MARKER = re.compile(r"^# harkit-readme-[\w-]+")


def untested_blocks(readme: str, tests_text: str) -> list[str]:
    """First lines of the command blocks of ``readme`` whose marker ``tests_text`` lacks."""
    missing = []
    for language, body in re.findall(r"^```([\w-]*)\n(.*?)^```", readme, flags=re.S | re.M):
        lines = body.splitlines()
        if language not in LABELLED and not (
            language == "" and any(COMMAND.match(line) for line in lines)
        ):
            continue
        marker = MARKER.match(lines[0] if lines else "")
        if marker is None or marker.group(0) not in tests_text:
            missing.append(f"```{language} block starting {(lines or [''])[0]!r}")
    return missing


def _tests_text() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8")
        for p in sorted((REPO / "tests").rglob("*.py"))
        if p.resolve() != THIS
    )


def test_every_readme_command_block_has_a_marker_a_test_uses() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert untested_blocks(readme, _tests_text()) == []


def test_an_untested_block_is_found() -> None:
    readme = (
        "```bash\n# harkit-readme-known\nharkit info --list\n```\n"
        "```\nharkit train --recipe x\n```\n"  # unlabelled, a command, no marker
        "```bash\n# harkit-readme-unknown\nmake demo\n```\n"  # a marker no test names
        "```\nsplit 1 (held out: 1): top-1 100.00%\n```\n"  # printed output: not a command
        "```text\nharkit: error\n```\n"
        "```python\nimport harkit\n```\n"
    )
    assert untested_blocks(readme, 'MARKER = "# harkit-readme-known"') == [
        "``` block starting 'harkit train --recipe x'",
        "```bash block starting '# harkit-readme-unknown'",
        "```python block starting 'import harkit'",
    ]
