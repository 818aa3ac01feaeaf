"""The log line of each decision otpctl makes itself (check, activate), sent where the
daemon's go: a login run from the command line is a real one, and monitoring reads syslog."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from otpcore.attempts import AuthOutcome
from otpcore.config import LoggingConfig
from otpcore.logfields import decision_line

SYSLOG_SOCKET = "/dev/log"
# A syslog daemon that stopped reading must not hang otpctl: it gives up on the line after this.
SEND_TIMEOUT_S = 2.0
_INFO = logging.handlers.SysLogHandler.LOG_INFO
_FACILITIES = logging.handlers.SysLogHandler.facility_names

log = logging.getLogger("otpradius.otpctl")

# A decision, or None where a command found nothing to decide (no refusal to give, say).
Outcome = TypeVar("Outcome", AuthOutcome, AuthOutcome | None)


class DecisionLog:
    """Writes the SPEC §9 line of each decision to syslog when ``[logging] syslog`` is on."""

    def __init__(self, config: LoggingConfig, operator: str, mode: str) -> None:
        self.config = config
        self.operator = operator
        self.mode = mode
        self.warned = False

    def decide(self, call: Callable[[], Outcome]) -> Outcome:
        """Run one decision and log it (if it made one), timed as the daemon times its own."""
        started = time.perf_counter()
        outcome = call()
        if outcome is not None:
            self._write(outcome, (time.perf_counter() - started) * 1000)
        return outcome

    def _write(self, outcome: AuthOutcome, ms: float) -> None:
        # With syslog = false the daemon writes to its stderr (the journal under systemd);
        # otpctl's stderr is the operator's terminal, which has the result already.
        level = logging.getLevelName(self.config.level.upper())
        if not self.config.syslog or level > logging.INFO:
            return
        line = decision_line(outcome, self.operator, "local", self.mode, ms)
        priority = _FACILITIES[self.config.facility] << 3 | _INFO
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
                log.warning("syslog = true but %s %s: the decision is not logged",
                            SYSLOG_SOCKET, problem)  # fmt: skip


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
