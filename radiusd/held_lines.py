"""Log lines held for a reader that takes none for now, and every sink of this process."""

from __future__ import annotations

import logging
import os
import weakref
from collections import deque
from typing import Protocol

# Lines held for a reader that takes none for now (about 2 MB of them); past that the newest
# are dropped and counted.
HELD_LINES = 10_000
# How long a stopping process waits for its reader to take the lines still held.
CLOSE_WAIT_S = 1.0


class HeldLines:
    """Lines not yet taken, oldest first; past HELD_LINES the newest are dropped and counted."""

    def __init__(self) -> None:
        self.lines: deque[bytes] = deque()
        self.dropped = 0

    def __bool__(self) -> bool:
        return bool(self.lines)

    def hold(self, line: bytes) -> None:
        """Keep ``line`` after the others, or count it dropped when the hold is full."""
        if len(self.lines) < HELD_LINES:
            self.lines.append(line)
        else:
            self.dropped += 1

    def forget(self) -> None:
        """Drop every line held and the count of those dropped."""
        self.lines.clear()
        self.dropped = 0


class Sink(Protocol):
    """A log handler that holds lines its reader cannot take yet."""

    def send_held(self) -> None:
        """Send what the reader takes now of the lines held for it."""

    def forget_held(self) -> None:
        """Drop the lines held (in a forked child: its parent sends them)."""


# Every sink of this process, for ``send_held`` and for a forked child to forget what its
# parent held (the parent sends those; sent by both, they would be logged twice).
_SINKS: weakref.WeakSet[Sink] = weakref.WeakSet()


def register(sink: Sink) -> None:
    """Have ``send_held`` and a fork reach ``sink``."""
    _SINKS.add(sink)


def send_held() -> None:
    """Send what each reader (syslog, stderr) takes now of the lines held for it."""
    for sink in list(_SINKS):
        sink.send_held()


def _forget_in_child() -> None:
    for sink in list(_SINKS):
        sink.forget_held()


os.register_at_fork(after_in_child=_forget_in_child)


def note(level: int, message: str, *args: object) -> logging.LogRecord:
    """A line about the log itself, handed to a handler directly (never through a logger,
    which would bring it back to the handler that is failing)."""
    return logging.LogRecord("otpradius", level, __file__, 0, message, args, None)
