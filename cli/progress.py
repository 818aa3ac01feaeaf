"""A progress bar on stderr for long imports, drawn only when stderr is a terminal.

The core reports ``progress(done, total)`` (``otpcore.progress``); this draws it. When stderr
is a file or a pipe (cron, CI, ``2>log``) nothing is drawn at all: a bar's carriage returns
would only clutter the log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Protocol, TextIO

import click

from otpcore.progress import Progress


class _Updatable(Protocol):
    def update(self, n_steps: int) -> None: ...


class _Bar:
    """A ``Progress`` drawing click's bar, opened at the first report (when the total is known)."""

    def __init__(self, label: str, stream: TextIO, stack: ExitStack) -> None:
        self.label = label
        self.stream = stream
        self.stack = stack
        self.bar: _Updatable | None = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            bar = click.progressbar(length=total, label=self.label, file=self.stream, show_pos=True)
            self.bar = self.stack.enter_context(bar)
        self.bar.update(done - self.shown)
        self.shown = done


@contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A progress callback drawing a bar on a terminal's stderr, or None when not a terminal."""
    stream = sys.stderr
    if not stream.isatty():
        yield None
        return
    with ExitStack() as stack:
        yield _Bar(label, stream, stack)
