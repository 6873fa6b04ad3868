"""``harkit`` entry point: assembles the verb modules and turns input errors into messages."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from harkit import __version__
from harkit.errors import HarkitError

# Each module exposes ``register(subparsers)``; the parser it adds sets ``func``.
# Listed in pipeline order, which is the order ``harkit --help`` shows them.
VERB_MODULES = (
    "harkit.cli.data",
    "harkit.cli.flow",
    "harkit.cli.extract",
    "harkit.cli.info",
    "harkit.cli.train",
    "harkit.cli.evaluate",
    "harkit.cli.ablate",
    "harkit.cli.reproduce",
    "harkit.cli.predict",
    "harkit.cli.stream",
    "harkit.cli.export",
)


class HarkitParser(argparse.ArgumentParser):
    """Usage errors as one line (argument, value, what is allowed) and exit status 2: the
    usage block argparse prints first would bury the line that matters. Verb and ``data``
    sub-parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = HarkitParser(
        prog="harkit",
        description="Human action recognition in video with hybrid CNN + RNN models.",
    )
    parser.add_argument("--version", action="version", version=f"harkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Lightning prints through its own handler; passing its records on would print them twice.
    logging.getLogger("lightning.pytorch").propagate = False
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarkitError as exc:
        print(f"harkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `harkit ... | head`: the reader has what it wanted
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a path the user gave cannot be written or read (/proc/x, a file/x)
        where = exc.filename or ""
        reason = exc.strerror or " ".join(str(exc).split())
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "a file stands where a folder is needed"
        print(
            f"harkit: error: {where}: {reason}" if where else f"harkit: error: {reason}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("harkit: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    # not a file descriptor (captured output): nothing to silence
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
