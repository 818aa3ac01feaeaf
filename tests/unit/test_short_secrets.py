"""A shared secret of 12 octets or fewer is accepted with a warning at start (SPEC §4)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from otpcore.config import parse_settings
from radiusd.supervisor import warn_short_secrets

SOURCE = Path("/etc/otpradius/config.toml")


def no_secret_files(path: Path) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", str(path))


def warnings_for(secret: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    client = {"name": "vpn-gw-1", "address": "127.0.0.1/32", "secret": secret}
    settings = parse_settings({"clients": [client]}, SOURCE, no_secret_files)
    with caplog.at_level(logging.WARNING, logger="otpradius.server"):
        warn_short_secrets(settings)
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    ("secret", "octets"),
    [
        ("s", 1),
        ("testing123", 10),
        ("x" * 12, 12),
        ("秘密の鍵", 12),  # counted in octets as sent, not in characters
    ],
)
def test_a_secret_of_twelve_octets_or_fewer_is_warned_about(
    secret: str, octets: int, caplog: pytest.LogCaptureFixture
) -> None:
    assert warnings_for(secret, caplog) == [
        f"weak secret client=vpn-gw-1 length={octets}: use 16 or more random octets"
    ]


@pytest.mark.parametrize("secret", ["x" * 13, "testing123testing", "秘密の鍵です"])
def test_a_secret_of_thirteen_octets_or_more_is_not(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert warnings_for(secret, caplog) == []
