"""The configuration file, read the same way by otpctl and by the daemon (at start and on
SIGHUP); ``otpcore.config`` checks who may change it and what it holds."""

from __future__ import annotations

import os
from pathlib import Path

from otpcore import config
from otpcore.config import ConfigFile, Settings
from otpcore.crypto import read_secret_file


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file."""
    try:
        with path.open("rb") as file:
            raw, mode = file.read(), os.fstat(file.fileno()).st_mode
        folder = Path(os.path.realpath(path)).parent
        read = ConfigFile(path, raw, mode, folder, folder.stat().st_mode)
    except OSError as exc:
        raise config.unreadable(path, exc) from None
    return config.load_settings(read, read_secret_file)
