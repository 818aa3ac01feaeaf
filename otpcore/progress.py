"""Progress of a long import, reported to whoever draws it (the CLI draws a bar on a terminal).

The core only counts: ``progress(done, total)`` is called as units of work complete, with
``done`` rising to ``total``. No callback, no cost.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""(units done, units in all) -> None."""


class Ticker:
    """Counts units of work and tells an optional ``Progress`` callback."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def advance(self, units: int = 1) -> None:
        """Record that ``units`` more are done."""
        self.done += units
        if self.callback is not None:
            self.callback(self.done, self.total)
