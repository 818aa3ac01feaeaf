"""Logging to syslog (facility from config) or stderr, one key=value line per event."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from otpcore.config import LoggingConfig

_FACILITIES = logging.handlers.SysLogHandler.facility_names


def setup_logging(
    config: LoggingConfig, *, force_stderr: bool = False, syslog_socket: str = "/dev/log"
) -> None:
    """Route every logger to syslog or stderr at the configured level."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if config.syslog and not force_stderr and os.path.exists(syslog_socket):
        handler = logging.handlers.SysLogHandler(
            address=syslog_socket, facility=_FACILITIES[config.facility]
        )
        handler.setFormatter(logging.Formatter("otp-radiusd[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s otp-radiusd[%(process)d] %(levelname)s %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if config.syslog and not force_stderr and isinstance(handler, logging.StreamHandler):
        # Said once, where the lines now go: an operator watching syslog would see nothing.
        logging.getLogger("otpradius").warning(
            "syslog = true but %s does not exist: logging to stderr", syslog_socket
        )


def field(value: str | None) -> str:
    """A log value that cannot break the key=value line: quoted when it has odd characters."""
    if value is None or value == "":
        return "-"
    # Printable text of any script is kept as it is, so that a Japanese login reads and greps
    # as typed; line breaks, controls, bidi overrides and unusual spaces are escaped.
    if value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return '"' + "".join(_escaped(c) for c in value) + '"'


def _escaped(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")
