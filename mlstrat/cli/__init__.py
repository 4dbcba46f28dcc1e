"""The `mlstrat` command: a thin shell over the library.

Each subcommand is one module of this package (listed in `COMMANDS`) with a
small handler taking parsed arguments; errors of type MlstratError become one
line on stderr and exit code 2. Modules are imported only to build the parser,
and heavy libraries only inside the handler that runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlstrat import __version__
from mlstrat.errors import MlstratError
from mlstrat.fileio import storage_error

#: The subcommands, in the order `mlstrat --help` lists them; each is the module
#: mlstrat.cli.<name>, whose add_parser(sub) adds its parser and sets `func=` on it.
COMMANDS: tuple[str, ...] = (
    "data",
    "features",
    "train",
    "models",
    "backtest",
    "walkforward",
    "run",
    "sweep",
    "report",
    "paper",
    "reconcile",
)


def build_parser() -> argparse.ArgumentParser:
    """The `mlstrat` parser: --version and every subcommand in `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="mlstrat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlstrat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"mlstrat.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except MlstratError as exc:
        print(f"mlstrat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        error = storage_error(exc, "read or write")
        if error is None:
            return _internal_error(args.command, exc)
        print(f"mlstrat {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlstrat: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback kept in a file
        return _internal_error(args.command, exc)
    return int(code or 0)


def _internal_error(command: str, exc: BaseException) -> int:
    """Exit 1 for a bug in mlstrat: one line on stderr, the traceback saved for the report."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="mlstrat-traceback-", suffix=".txt", delete=False
        ) as handle:
            handle.write(text)
        where = f"; the traceback is in {handle.name}"
    except OSError:
        where = ""
    print(
        f"mlstrat {command}: internal error ({type(exc).__name__}: {exc}). This is a bug in "
        f"mlstrat; please report it{where}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
