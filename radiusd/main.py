"""``otp-radiusd``: validate the configuration, then hand over to the supervisor."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
from pathlib import Path

from otpcore.app import build_app
from otpcore.errors import OtpError
from otphost.clock import system_clock
from otphost.settings import load_settings
from radiusd.logsetup import setup_logging
from radiusd.sockets import ensure_free, ensure_local
from radiusd.supervisor import Supervisor, warn_readable_secrets, warn_weak_clients

DEFAULT_CONFIG = "/etc/otpradius/config.toml"
log = logging.getLogger("otpradius.server")


def main(argv: list[str] | None = None) -> int:
    """Run the daemon; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="otp-radiusd", description="RADIUS server for password + one-time-password login."
    )
    parser.add_argument(
        "--config",
        type=Path,
        # Empty counts as unset, as for otpctl: Path("") would be the current folder.
        default=Path(os.environ.get("OTPRADIUS_CONFIG") or DEFAULT_CONFIG),
        # The fixed fallback, not %(default)s: with the variable set, that is its value.
        help=f"configuration file (default: $OTPRADIUS_CONFIG, else {DEFAULT_CONFIG})",
    )
    parser.add_argument("--stderr", action="store_true", help="log to stderr, not syslog")
    parser.add_argument("--check", action="store_true", help="validate the setup and exit")
    args = parser.parse_args(argv)
    forbid_core_dumps()
    try:
        return _run(args.config, check=args.check, force_stderr=args.stderr)
    except OtpError as exc:
        print(f"otp-radiusd: error: {exc}", file=sys.stderr)
        return exc.exit_code


def forbid_core_dumps() -> None:
    """Keep this process and its workers from ever writing a core dump."""
    # Before any secret is read: a dump holds the seed key, the clients' shared secrets and
    # the passwords being checked, and the shell or unit that started us may allow dumps.
    # The hard limit too, so nothing in the process can raise it again; workers inherit it.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run(config: Path, *, check: bool, force_stderr: bool) -> int:
    settings = load_settings(config)
    setup_logging(settings.logging, force_stderr=force_stderr)
    warn_weak_clients(settings)
    # Fail at start, not in a worker: the key file, the database and its schema.
    build_app(settings, system_clock).store.dispose()
    if check:
        for host, port in settings.server.listen:
            ensure_local(host, port)  # the port itself is the running daemon's
        # Said once it is usable: a start that fails says only why, in one line.
        warn_readable_secrets(config, settings)
        print(f"otp-radiusd: {config}: configuration, key file and database are usable")
        return 0
    # Only on a real start: --check is run beside the serving daemon, before a reload.
    for host, port in settings.server.listen:
        ensure_free(host, port)
    return Supervisor(config, settings).run()


if __name__ == "__main__":
    sys.exit(main())
