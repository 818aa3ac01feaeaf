"""Log lines to stderr without ever waiting for whoever reads it."""

from __future__ import annotations

import io
import logging
import os
import select
import stat
import sys
import time
from typing import TextIO

from radiusd.held_lines import CLOSE_WAIT_S, HeldLines, note, register

STDERR_FORMAT = "%(asctime)s otp-radiusd[%(process)d] %(levelname)s %(message)s"


class StderrSink(logging.Handler):
    """stderr that never blocks the thread that logs; lines it cannot take yet are held.

    Under systemd stderr is a stream socket to journald, elsewhere often a pipe to a log
    collector. Once such a reader stops reading (journald stalled on a slow disk, a collector
    hung), a plain write blocks when the buffer is full, and the packet loop, which logs every
    decision, stops answering. Here a line is written only when stderr takes it now; else it
    is held, in order, and written before the next one or by ``send_held`` each second; past
    the hold the newest are dropped, counted, and the count is said once lines go out again.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.setFormatter(logging.Formatter(STDERR_FORMAT))
        self.held = HeldLines()
        self._poll: select.poll | None = None
        self._fd = -1
        register(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"
        except Exception:
            self.handleError(record)  # a fault in a message, not the reader's: as logging says
            return
        fd = self._descriptor()
        if fd < 0:
            # Not a file (a test's captured stream): nothing there can block.
            self.stream.write(text)
            self.stream.flush()
            return
        line = text.encode("utf-8", "backslashreplace")
        try:
            self._write_held(fd)
            if self.held:
                self.held.hold(line)
            else:
                rest = self._push(fd, line)
                if rest:
                    self.held.lines.appendleft(rest)  # the rest of a line goes out first
        except OSError:
            pass  # stderr is gone (closed, its reader dead): there is nowhere left to say so

    def send_held(self) -> None:
        """Write what stderr takes now of the lines held for it."""
        self.acquire()
        try:
            if self.held or self.held.dropped:
                self._write_held(self._descriptor())
        except OSError:
            pass
        finally:
            self.release()

    def forget_held(self) -> None:
        """Drop the lines held (in a forked child: its parent writes them)."""
        self.held.forget()

    def close(self) -> None:
        self.acquire()
        try:
            # A stopping process gives a slow reader a moment, not for ever.
            deadline = time.monotonic() + CLOSE_WAIT_S
            fd = self._descriptor()
            while self.held and fd >= 0 and time.monotonic() < deadline:
                if self._wait(fd, deadline):
                    self._write_held(fd)
        except OSError:
            pass
        finally:
            self.release()
        super().close()

    def _descriptor(self) -> int:
        """The stream's file descriptor, polled for room; -1 when it has none."""
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return -1
        if fd != self._fd:
            self._fd = fd
            self._poll = None
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                regular = False  # closed: the write says so
            if not regular:  # a file takes every line at once; a poll would only cost time
                self._poll = select.poll()
                self._poll.register(fd, select.POLLOUT)
        return fd

    def _ready(self) -> bool:
        # Any event: room for a line, or an error that the write then reports.
        return self._poll is None or bool(self._poll.poll(0))

    def _wait(self, fd: int, deadline: float) -> bool:
        left = max(0.0, deadline - time.monotonic())
        return self._poll is None or bool(self._poll.poll(int(left * 1000) + 1))

    def _push(self, fd: int, line: bytes) -> bytes:
        """Write what stderr takes now of ``line``; the rest."""
        # Polled writable, a pipe has a free buffer of a page and a socket three quarters of
        # its send buffer: a write of at most a page (PIPE_BUF) then never waits, so a longer
        # line goes out a page at a time, each only when there is room.
        while line and self._ready():
            try:
                written = os.write(fd, line[: select.PIPE_BUF])
            except BlockingIOError:  # a descriptor someone made non-blocking
                break
            line = line[written:]
        return line

    def _write_held(self, fd: int) -> None:
        lines = self.held.lines
        while lines:
            rest = self._push(fd, lines[0])
            if rest:
                lines[0] = rest
                return
            lines.popleft()
        if self.held.dropped:
            dropped = note(
                logging.WARNING, "stderr took no lines for a while: %d dropped", self.held.dropped
            )
            rest = self._push(fd, (self.format(dropped) + "\n").encode())
            self.held.dropped = 0
            if rest:
                lines.append(rest)


def stderr_handler() -> logging.Handler:
    """A handler writing lines to stderr, with their time and level, never blocking."""
    return StderrSink()
