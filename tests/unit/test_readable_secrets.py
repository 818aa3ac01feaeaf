"""The start-up warning about secrets in a configuration file others on the host may read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from otpcore.config import settings_from_bytes
from radiusd.supervisor import warn_readable_secrets


def _no_secret_files(path: Path) -> bytes:
    raise AssertionError(f"no secret file expected: {path}")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://app:Pg-Secret-4711@db.example/otp",
        "postgresql+psycopg://app@db.example/otp?password=Pg-Secret-4711",
        "postgresql+psycopg://app@db.example/otp?sslpassword=Pg-Secret-4711",
    ],
)
def test_a_database_password_anywhere_in_the_url_is_warned_about(
    tmp_path: Path, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    config.chmod(0o644)
    settings = settings_from_bytes(config.read_bytes(), config, _no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_readable_secrets(config, settings)
    assert "database password in [database] url" in caplog.text
    assert "Pg-Secret-4711" not in caplog.text


def test_a_url_without_a_password_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "config.toml"
    url = "postgresql+psycopg://app@db.example/otp?sslmode=verify-full"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    config.chmod(0o644)
    settings = settings_from_bytes(config.read_bytes(), config, _no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_readable_secrets(config, settings)
    assert "readable secrets" not in caplog.text


def test_the_settings_repr_holds_no_database_password(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    url = "postgresql+psycopg://app:Pg-Secret-4711@db.example/otp"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    settings = settings_from_bytes(config.read_bytes(), config, _no_secret_files)
    assert "Pg-Secret-4711" not in repr(settings)
