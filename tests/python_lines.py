"""Count the Python lines a call executes: a check of vectorised code that no load can flake.

A wall-time bound on "this is fast" fails on a busy machine and passes a per-row Python loop
on a fast one. The number of Python lines executed does neither: vectorised code runs about
as many lines on 10x the rows (the rows are looped over in C), a loop over rows runs at
least one line more per row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def python_lines(call: Callable[[], Any]) -> int:
    """Python line events while `call()` runs, in this thread (C code adds none)."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()  # a coverage tool's tracer, put back afterwards
    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def assert_lines_do_not_grow_with_rows(
    small: Callable[[], Any], large: Callable[[], Any], extra_rows: int
) -> None:
    """`large` has `extra_rows` more rows than `small`: it may run a few more lines (a code
    path that depends on the size), not one per extra row (a loop over rows)."""
    small()  # first calls import, compile and cache: count neither
    large()
    few, many = python_lines(small), python_lines(large)
    assert many - few < extra_rows // 10, (
        f"{many} Python lines on {extra_rows} more rows than {few}: a loop over rows"
    )
