"""The drop lines: what a NAS administrator reads when a gateway gets no answer."""

from __future__ import annotations

import logging

import pytest

from radiusd.drops import DropLog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_drop_after_the_client_is_known_names_it(caplog: pytest.LogCaptureFixture) -> None:
    # With a /24 and a /32 overlapping, the source alone does not say whose secret was used.
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    DropLog().drop("bad_message_authenticator", "192.0.2.10", 100.0, client="vpn-gw-1")
    assert lines(caplog) == [
        "drop reason=bad_message_authenticator src=192.0.2.10 client=vpn-gw-1 total=1"
    ]


def test_one_nas_dropped_does_not_hide_another(caplog: pytest.LogCaptureFixture) -> None:
    # A gateway set up with a wrong secret must show in the log even while another one,
    # retired or misconfigured, has been dropped within the minute.
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    drops = DropLog()
    drops.drop("bad_message_authenticator", "192.0.2.10", 100.0, client="old-gw")
    drops.drop("bad_message_authenticator", "192.0.2.10", 101.0, client="old-gw")
    drops.drop("bad_message_authenticator", "192.0.2.20", 102.0, client="new-gw")
    drops.drop("unknown_client", "198.51.100.1", 103.0)
    drops.drop("unknown_client", "198.51.100.2", 104.0)
    assert lines(caplog) == [
        "drop reason=bad_message_authenticator src=192.0.2.10 client=old-gw total=1",
        "drop reason=bad_message_authenticator src=192.0.2.20 client=new-gw total=1",
        "drop reason=unknown_client src=198.51.100.1 total=1",
    ]


def test_a_malformed_packet_reason_stays_one_value(caplog: pytest.LogCaptureFixture) -> None:
    # The packet decoder's reasons have spaces ("unknown code"): unquoted, a parser splitting
    # the line on spaces read reason=malformed:unknown and a stray word "code".
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    DropLog().drop("malformed:unknown code", "192.0.2.10", 100.0, client="vpn-gw-1")
    assert lines(caplog) == [
        'drop reason="malformed:unknown code" src=192.0.2.10 client=vpn-gw-1 total=1'
    ]
