"""Logging to syslog (facility from config) or stderr, one key=value line per event."""

from __future__ import annotations

import logging
import logging.handlers
import socket

from otpcore.config import LoggingConfig
from radiusd.stderr_sink import stderr_handler
from radiusd.syslog_sink import SyslogSink, reason

_FACILITIES = logging.handlers.SysLogHandler.facility_names


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
            problem = f"does not answer ({reason(exc)})"
        else:
            handler = SyslogSink(syslog_socket, _FACILITIES[config.facility], kind)
    root.addHandler(handler or stderr_handler())
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
