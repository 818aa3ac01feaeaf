"""The daemon's configuration file, read and checked the same way at start and on SIGHUP."""

from __future__ import annotations

from pathlib import Path

from otpcore.config import Settings, read_config_file, settings_from_bytes
from otpcore.crypto import read_secret_file
from otpcore.errors import ConfigError


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file."""
    try:
        raw = read_config_file(path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found (give --config PATH or set OTPRADIUS_CONFIG)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    return settings_from_bytes(raw, path, read_secret_file)
