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
