"""Logging to syslog (facility from config) or stderr, one key=value line per event."""

from __future__ import annotations

import logging
import logging.handlers
import socket
import sys

from otpcore.config import LoggingConfig

_FACILITIES = logging.handlers.SysLogHandler.facility_names
_SYSLOG_FORMAT = "otp-radiusd[%(process)d]: %(message)s"
_STDERR_FORMAT = "%(asctime)s otp-radiusd[%(process)d] %(levelname)s %(message)s"


class _Syslog(logging.handlers.SysLogHandler):
    """Syslog, and stderr for the lines the syslog daemon does not take.

    logging's own answer to a line that could not be sent is "--- Logging error ---" and a
    traceback of some thirty lines on stderr, each time, and the line lost: a syslog daemon that
    died under the server turned its log into tracebacks. Here the first line that cannot be
    sent says so once, on stderr; that line and the next ones are written there instead, while
    each is first offered to syslog again (a reconnection, which costs microseconds), and the
    first one syslog takes again is followed by one line saying so, in both places.
    """

    def __init__(self, path: str, facility: int, kind: socket.SocketKind) -> None:
        super().__init__(address=path, facility=facility, socktype=kind)
        self.path = path
        self.setFormatter(logging.Formatter(_SYSLOG_FORMAT))
        self.fallback = _stderr_handler()
        self.diverted = 0  # lines written to stderr since syslog stopped taking them
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)  # calls handleError when the line could not be sent
        if self.diverted and not self._failed:
            went = "line went" if self.diverted == 1 else "lines went"
            note = _note(logging.INFO, "syslog %s answers again; %d %s to stderr meanwhile",
                         self.path, self.diverted, went)  # fmt: skip
            self.diverted = 0
            self.fallback.handle(note)
            super().emit(note)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a fault in a message, not syslog's: as logging says
            return
        self._failed = True
        if not self.diverted:
            self.fallback.handle(_note(logging.WARNING, "syslog %s does not answer (%s): "
                                       "logging to stderr until it does", self.path,
                                       _reason(error)))  # fmt: skip
        self.diverted += 1
        self.fallback.handle(record)

    def close(self) -> None:
        super().close()
        self.fallback.close()


def setup_logging(
    config: LoggingConfig, *, force_stderr: bool = False, syslog_socket: str = "/dev/log"
) -> None:
    """Route every logger to syslog or stderr at the configured level."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler | None = None
    problem = ""
    if config.syslog and not force_stderr:
        try:
            kind = _socket_kind(syslog_socket)
        except FileNotFoundError:
            problem = "does not exist"
        except OSError as exc:
            # A socket file whose syslog daemon is gone, or a file that is no socket.
            problem = f"does not answer ({_reason(exc)})"
        else:
            handler = _Syslog(syslog_socket, _FACILITIES[config.facility], kind)
    root.addHandler(handler or _stderr_handler())
    root.setLevel(config.level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if problem:
        # Said once, where the lines now go: an operator watching syslog would see nothing.
        logging.getLogger("otpradius").warning(
            "syslog = true but %s %s: logging to stderr", syslog_socket, problem
        )


def _socket_kind(path: str) -> socket.SocketKind:
    """The type of socket a syslog daemon takes lines on at ``path``; OSError when none does."""
    try:
        _connect(path, socket.SOCK_DGRAM)
    except OSError:
        _connect(path, socket.SOCK_STREAM)  # raises what a stream socket meets there
        return socket.SOCK_STREAM
    return socket.SOCK_DGRAM


def _connect(path: str, kind: socket.SocketKind) -> None:
    with socket.socket(socket.AF_UNIX, kind) as probe:
        probe.connect(path)


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_STDERR_FORMAT))
    return handler


def _note(level: int, message: str, *args: object) -> logging.LogRecord:
    """A line about the log itself, handed to a handler directly (never through a logger,
    which would bring it back to the handler that is failing)."""
    return logging.LogRecord("otpradius", level, __file__, 0, message, args, None)


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
