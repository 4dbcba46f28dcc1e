"""Progress of long loops: a tqdm bar on a terminal, plain log lines anywhere else.

Every loop a person waits for (feature files, walk-forward folds, run stages)
reports through `progress_bar`. tqdm redraws its bar with carriage returns and
terminal escape codes, which garble a log file, a CI log or a pipe; so when the
stream it writes to (stderr) is not a terminal, the same calls print one plain
line at each tenth of the work (at most one per step, at least one every 30 s)
and at the end:

    walk-forward folds: 3/10 fold (30%) 12.4 s

Jupyter keeps tqdm's notebook widget (tqdm.auto).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: Seconds after which a plain progress line is written even without a new tenth done.
PLAIN_INTERVAL = 30.0


def is_terminal(stream: Any) -> bool:
    """True when `stream` is an interactive terminal (its isatty() says so)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached streams
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    **options: Any,
) -> Any:
    """A tqdm bar when `stream` (default stderr) is a terminal or Jupyter runs us, else plain lines.

    `options` are tqdm's ``total``, ``desc``, ``unit`` and ``initial``. Both kinds
    support ``update(n)``, ``set_postfix_str(text)``, ``close()``, use as a context
    manager and iteration over `iterable`. ``enabled=False`` prints nothing.
    """
    out = sys.stderr if stream is None else stream
    if enabled and (is_terminal(out) or "ipykernel" in sys.modules):
        from tqdm.auto import tqdm

        return tqdm(iterable, file=out, **options)
    return PlainProgress(iterable, enabled=enabled, stream=out, **options)


class PlainProgress:
    """The subset of tqdm's interface mlstrat uses, writing plain lines (see module docstring)."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        initial: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.n = initial
        self.postfix = ""
        self.stream = stream
        self._started = time.monotonic()
        self._last_line = self._started
        self._last_tenth = self._tenth(initial)
        self._written = initial  # the count the last line showed
        self._closed = False

    def _tenth(self, n: int) -> int:
        return int(10 * n / self.total) if self.total else 0

    def update(self, n: int = 1) -> None:
        """Count `n` more steps; write a line when a new tenth is done or 30 s have passed."""
        self.n += n
        now = time.monotonic()
        tenth = self._tenth(self.n)
        if tenth > self._last_tenth or now - self._last_line >= PLAIN_INTERVAL:
            self._last_tenth = tenth
            self._write(now)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Text shown after the count on the next line (tqdm's postfix)."""
        self.postfix = str(text)

    def close(self) -> None:
        """Write the final count unless the last line already showed it."""
        if self._closed:
            return
        self._closed = True
        if self.n != self._written:
            self._write(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The plain line for the current state."""
        elapsed = (time.monotonic() if now is None else now) - self._started
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{count} {self.unit}{share} {elapsed:.1f} s{extra}"

    def _write(self, now: float) -> None:
        self._last_line = now
        self._written = self.n
        if self.enabled and self.stream is not None:
            print(self.line(now), file=self.stream, flush=True)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("PlainProgress was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
