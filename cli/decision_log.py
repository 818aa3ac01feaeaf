"""The log line of each decision otpctl makes itself (check, activate), sent where the
daemon's go: a login run from the command line is a real one, and monitoring reads syslog.

What else the operator must be told of a decision (a token or user it suspended, a line that
could not be logged) is kept as notes, for the command to put in its one error line (SPEC §5)
or, when it succeeds, to print after its result.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from otpcore.attempts import AuthOutcome
from otpcore.config import LoggingConfig
from otpcore.logfields import decision_line

SYSLOG_SOCKET = "/dev/log"
# A syslog daemon that stopped reading must not hang otpctl: it gives up on the line after this.
SEND_TIMEOUT_S = 2.0
_INFO = logging.handlers.SysLogHandler.LOG_INFO
_WARNING = logging.handlers.SysLogHandler.LOG_WARNING
# The core logs a suspension its decision wrote here, as the daemon's WARNING line.
_CORE_EVENTS = "otpcore.effects"
_FACILITIES = logging.handlers.SysLogHandler.facility_names

# A decision, or None where a command found nothing to decide (no refusal to give, say).
Outcome = TypeVar("Outcome", AuthOutcome, AuthOutcome | None)


class DecisionLog:
    """Writes the SPEC §9 line of each decision to syslog when ``[logging] syslog`` is on."""

    def __init__(self, config: LoggingConfig, operator: str, mode: str) -> None:
        self.config = config
        self.operator = operator
        self.mode = mode
        self.warned = False
        # For the operator, in the order they arose; never a secret (log lines never hold one).
        self.notes: list[str] = []

    def decide(self, call: Callable[[], Outcome]) -> Outcome:
        """Run one decision and log it (if it made one), timed as the daemon times its own."""
        started = time.perf_counter()
        with _caught(_CORE_EVENTS) as events:
            outcome = call()
        if outcome is not None:
            line = decision_line(outcome, self.operator, "local", self.mode,
                                 (time.perf_counter() - started) * 1000)  # fmt: skip
            self._write(line, _INFO)
        for event in events:
            # A suspension is the line monitoring watches for: logged as the daemon logs it.
            self.notes.append(event)
            self._write(event, _WARNING)
        return outcome

    def _write(self, line: str, severity: int) -> None:
        # With syslog = false the daemon writes to its stderr (the journal under systemd);
        # otpctl's stderr is the operator's terminal, which has the result already.
        level = logging.getLevelName(self.config.level.upper())
        if not self.config.syslog or level > _LEVELS[severity]:
            return
        priority = _FACILITIES[self.config.facility] << 3 | severity
        message = f"<{priority}>otpctl[{os.getpid()}]: {line}\000".encode()
        try:
            _send(message)
        except OSError as exc:
            if not self.warned:  # once a command: its result is on the terminal anyway
                self.warned = True
                if isinstance(exc, FileNotFoundError):
                    problem = "does not exist"
                else:
                    problem = f"does not answer ({exc.strerror or str(exc) or type(exc).__name__})"
                self.notes.append(
                    f"syslog = true but {SYSLOG_SOCKET} {problem}: the decision is not logged"
                )


_LEVELS = {_INFO: logging.INFO, _WARNING: logging.WARNING}


@contextmanager
def _caught(name: str) -> Iterator[list[str]]:
    """The messages of WARNING and above that logger ``name`` logs meanwhile, kept from stderr."""
    caught: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage())

    logger = logging.getLogger(name)
    handler = _Keep(logging.WARNING)
    propagated = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # not also on stderr as a line of its own
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagated


def _send(message: bytes) -> None:
    """One line to the local syslog daemon, on whichever kind of socket it listens."""
    sock = _connected(socket.SOCK_DGRAM)
    with sock:
        sock.sendall(message)


def _connected(kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.settimeout(SEND_TIMEOUT_S)
    try:
        sock.connect(SYSLOG_SOCKET)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EPROTOTYPE and kind == socket.SOCK_DGRAM:
            return _connected(socket.SOCK_STREAM)  # syslog-ng's unix-stream(), say
        raise
    return sock
