"""The daemon's configuration file, read and checked the same way at start and on SIGHUP."""

from __future__ import annotations

from pathlib import Path

from otpcore import config
from otpcore.config import Settings
from otpcore.crypto import read_secret_file


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file."""
    return config.load_settings(path, read_secret_file)
