"""Log lines to the syslog daemon without ever waiting for it."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import select
import socket
import time

from radiusd.held_lines import CLOSE_WAIT_S, HeldLines, note, register
from radiusd.stderr_sink import stderr_handler

SYSLOG_FORMAT = "otp-radiusd[%(process)d]: %(message)s"


class SyslogSink(logging.Handler):
    """Syslog through a socket that never blocks; stderr while the daemon does not answer.

    A syslog daemon that stops reading (journald stalled on a slow disk, rsyslog whose queue
    is full behind a remote target that is down) used to block the thread that logged once
    ten datagrams were queued: the packet loop logs every decision, so logins stopped, the
    supervisor killed the worker as hung, and after five such deaths the server stopped.
    Here a line the daemon cannot take yet is held, in order, and sent before the next one
    (or by ``send_held`` each second); past HELD_LINES the newest are dropped and counted,
    and the count is said when the daemon takes lines again.

    logging's own answer to a line that could not be sent is "--- Logging error ---" and a
    traceback of some thirty lines on stderr, each time, and the line lost: a syslog daemon
    that died under the server turned its log into tracebacks. Here the first line that cannot
    be sent says so once, on stderr; that line and the next ones are written there instead,
    while each is first offered to syslog again (a reconnection, which costs microseconds), and
    the first one syslog takes again is followed by one line saying so, in both places.
    """

    def __init__(self, path: str, facility: int, kind: socket.SocketKind) -> None:
        super().__init__()
        self.path = path
        self.facility = facility
        self.kind = kind
        self.setFormatter(logging.Formatter(SYSLOG_FORMAT))
        self.fallback = stderr_handler()
        self.diverted = 0  # lines written to stderr since syslog stopped answering
        self.held = HeldLines()
        self.sock: socket.socket | None = None
        with contextlib.suppress(OSError):  # said by the first line that finds it so
            self._socket()
        register(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._line(record)
        except Exception:
            super().handleError(record)  # a fault in a message, not syslog's: as logging says
            return
        try:
            self._send_held()
            self._send_or_hold(line)
        except OSError as error:
            self._divert(record, error)
            return
        if self.diverted:
            went = "line went" if self.diverted == 1 else "lines went"
            back = note(logging.INFO, "syslog %s answers again; %d %s to stderr meanwhile",
                          self.path, self.diverted, went)  # fmt: skip
            self.diverted = 0
            self.fallback.handle(back)
            self._offer(back)

    def send_held(self) -> None:
        """Send what the daemon can take now of the lines held for it."""
        self.acquire()
        try:
            self._send_held()
        except OSError:
            pass  # not answering: said by the next line logged
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            # A stopping process gives a slow daemon a moment, not for ever.
            deadline = time.monotonic() + CLOSE_WAIT_S
            while self.held and self.sock is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if select.select([], [self.sock], [], left)[1]:
                    before = len(self.held.lines)
                    self._send_held()
                    if len(self.held.lines) == before:
                        # A datagram socket polls writable while the daemon's queue is full.
                        time.sleep(0.01)
        except OSError:
            pass
        finally:
            self._disconnect()
            self.release()
        super().close()
        self.fallback.close()

    def forget_held(self) -> None:
        """Drop the lines held (in a forked child: its parent sends them)."""
        self.held.forget()

    def _line(self, record: logging.LogRecord) -> bytes:
        """The datagram of a record: priority, the line, and a NUL, as SysLogHandler sends it."""
        handler = logging.handlers.SysLogHandler
        severity = handler.priority_names[handler.priority_map.get(record.levelname, "warning")]
        return f"<{self.facility << 3 | severity}>{self.format(record)}\000".encode()

    def _send(self, line: bytes) -> bytes:
        """Send what the daemon takes now of ``line``; the rest. OSError: not answering."""
        # A second try on a new connection: a restarted daemon leaves the old socket refusing.
        for last in (False, True):
            try:
                return self._push(self._socket(), line)
            except OSError:
                self._disconnect()
                if last:
                    raise
        return line  # not reached: the second try returns or raises

    def _push(self, sock: socket.socket, line: bytes) -> bytes:
        if self.kind == socket.SOCK_DGRAM:
            try:
                sock.send(line)  # a datagram goes whole or not at all
            except BlockingIOError:
                return line
            return b""
        # A stream takes a line in parts, a page at a time while it has room; the rest of a
        # line goes out first next time.
        while line:
            try:
                sent = sock.send(line[: select.PIPE_BUF], socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            line = line[sent:]
        return line

    def _send_or_hold(self, line: bytes) -> None:
        if self.held:
            self.held.hold(line)
        elif rest := self._send(line):
            self.held.lines.append(rest)

    def _send_held(self) -> None:
        lines = self.held.lines
        while lines:
            rest = self._send(lines[0])
            if rest:
                lines[0] = rest
                return
            lines.popleft()
        if self.held.dropped:
            dropped = note(logging.WARNING, "syslog %s took no lines for a while: %d dropped",
                            self.path, self.held.dropped)  # fmt: skip
            line = self._line(dropped)
            rest = self._send(line)
            if rest != line:  # said, in whole or in part: the rest follows
                self.held.dropped = 0
                if rest:
                    lines.append(rest)

    def _offer(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):
            self._send_or_hold(self._line(record))

    def _divert(self, record: logging.LogRecord, error: OSError) -> None:
        if not self.diverted:
            self.fallback.handle(note(logging.WARNING, "syslog %s does not answer (%s): "
                                       "logging to stderr until it does", self.path,
                                       reason(error)))  # fmt: skip
        self.diverted += 1
        self.fallback.handle(record)

    def _socket(self) -> socket.socket:
        """The socket to the daemon, connected again if it was let go."""
        if self.sock is not None:
            return self.sock
        sock = socket.socket(socket.AF_UNIX, self.kind)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        # A datagram socket never waits; a stream socket's sends say MSG_DONTWAIT each.
        if self.kind == socket.SOCK_DGRAM:
            sock.setblocking(False)
        self.sock = sock
        return sock

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def reason(error: OSError) -> str:
    """The system's words for an error, for a log line."""
    return error.strerror or type(error).__name__
