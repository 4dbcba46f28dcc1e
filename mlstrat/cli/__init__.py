"""The `mlstrat` command: a thin shell over the library.

Each subcommand is a small function taking parsed arguments; errors of type
MlstratError become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mlstrat import __version__
from mlstrat.errors import MlstratError
from mlstrat.fileio import storage_error

Handler = Callable[[argparse.Namespace], int | None]


def _add_data(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.data import add_parser

    add_parser(sub)


def _add_features(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.features import add_parser

    add_parser(sub)


def _add_predictors(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.train import add_parser

    add_parser(sub)


def _add_backtest(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.backtest import add_parser

    add_parser(sub)


def _add_walkforward(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.walkforward import add_parser

    add_parser(sub)


def _add_run(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.run import add_parser

    add_parser(sub)


def _add_report(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.report import add_parser

    add_parser(sub)


def _add_paper(sub: argparse._SubParsersAction) -> None:
    from mlstrat.cli.paper import add_parser

    add_parser(sub)


# One registration function per subcommand family; each adds its parser and
# sets `func` through parser.set_defaults(func=handler).
REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_data,
    _add_features,
    _add_predictors,
    _add_backtest,
    _add_walkforward,
    _add_run,
    _add_report,
    _add_paper,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlstrat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mlstrat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
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
