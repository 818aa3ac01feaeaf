"""The log line of a request that could not be decided: the cause, and no secret."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from otpcore.client_config import ClientConfig
from otpcore.errors import KeyFileError, StorageError
from radiusd.handler import failed

CLIENT = ClientConfig("vpn-gw-1", (ipaddress.ip_network("192.0.2.10/32"),), b"s" * 16)


def test_a_key_file_error_says_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    # A node left without the rotated key: every login is dropped, and the log is where the
    # operator learns why.
    exc = KeyFileError("the seed of token 23456789 names a key the key file does not hold")
    with caplog.at_level(logging.ERROR, logger="otpradius.auth"):
        answer = failed(exc, CLIENT, "chirodt")
    assert answer.reply is None
    assert answer.drop_reason == "error"
    assert caplog.messages == [
        'auth error=KeyFileError detail="the seed of token 23456789 names a key the key file '
        'does not hold" user=chirodt client=vpn-gw-1'
    ]


@pytest.mark.parametrize("exc", [StorageError("value 'hunter2'"), ValueError("hunter2")])
def test_other_errors_show_their_class_only(
    caplog: pytest.LogCaptureFixture, exc: Exception
) -> None:
    with caplog.at_level(logging.ERROR, logger="otpradius.auth"):
        failed(exc, CLIENT, "chirodt")
    assert caplog.messages == [f"auth error={type(exc).__name__} user=chirodt client=vpn-gw-1"]
    assert "hunter2" not in caplog.text
