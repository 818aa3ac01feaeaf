"""What every command shares: the configuration file, read once, and the App, built lazily.

Nothing is opened before a command asks for it, so ``otpctl --help`` works without a
configuration and ``otpctl init`` works before the database and key file exist.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

import otpcore.store.engine as engine_setup
from cli.decision_log import DecisionLog
from otpcore.admin import Admin
from otpcore.app import App, build_app
from otpcore.config import Settings
from otpcore.ports import Clock
from otpcore.service import Authenticator
from otphost.clock import system_clock
from otphost.settings import load_settings

DEFAULT_CONFIG = Path("/etc/otpradius/config.toml")
CONFIG_ENV = "OTPRADIUS_CONFIG"


def operator() -> str:
    """The audit actor of commands run by a person: otpctl and the operating-system user."""
    # The account of the process's real uid, not getpass.getuser(): that believes LOGNAME and
    # USER, so anyone could have the audit trail name someone else.
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry, e.g. an arbitrary container uid
        return f"otpctl:uid{os.getuid()}"
    sudo_user = os.environ.get("SUDO_USER")
    if os.getuid() == 0 and sudo_user:
        # Only root can set it falsely, and root could rewrite the audit table anyway. Bytes
        # that are not UTF-8 (an account named in another encoding) are kept as \xNN: as
        # Python's surrogates they could not be stored, and the command would fail.
        shown = os.fsencode(sudo_user).decode("utf-8", "backslashreplace")
        return f"otpctl:{shown}(sudo)"
    return f"otpctl:{name}"


@dataclass
class CliContext:
    """The ``ctx.obj`` of every command: the configuration path and what is built from it."""

    config_path: Path
    clock: Clock = system_clock
    _settings: Settings | None = field(default=None, repr=False)
    _app: App | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The validated configuration, read on first use."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def app(self) -> App:
        """The App (database at the current schema, key file), built on first use."""
        if self._app is None:
            # check and activate commit through the daemon's own path: a worker stuck in
            # its commit (a dead disk) must make them fail as busy, as any other write does.
            wait = engine_setup.BUSY_TIMEOUT_S
            self._app = build_app(self.settings(), self.clock, turn_wait=wait)
        return self._app

    def admin(self) -> Admin:
        """The administration use cases, audited under the operator's name."""
        return self.app().admin(operator())

    def authenticator(self) -> Authenticator:
        """The authentication use case, as ``otpctl check`` and ``activate`` run it."""
        return self.app().authenticator(operator())

    def decision_log(self, mode: str) -> DecisionLog:
        """Where ``check`` and ``activate`` log each decision, as the daemon does (SPEC §9)."""
        return DecisionLog(self.settings().logging, operator(), mode)

    def close(self) -> None:
        """Release the database connections, if any were opened."""
        if self._app is not None:
            self._app.store.dispose()
            self._app = None
