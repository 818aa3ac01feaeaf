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


def test_a_burst_is_told_whole_once_its_minute_is_over(caplog: pytest.LogCaptureFixture) -> None:
    # Four broken packets in six seconds must not read as one ("total=1") until, perhaps
    # never, another comes.
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    drops = DropLog()
    for at in (100.0, 102.0, 104.0, 106.0):
        drops.drop("malformed:bad attribute length", "192.0.2.10", at, client="vpn-gw-1")
    drops.flush(159.9)  # not a minute since the line yet
    assert len(caplog.records) == 1
    drops.flush(160.0)
    drops.flush(300.0)  # nothing more to tell
    assert lines(caplog) == [
        'drop reason="malformed:bad attribute length" src=192.0.2.10 client=vpn-gw-1 total=1',
        'drop reason="malformed:bad attribute length" src=192.0.2.10 client=vpn-gw-1 total=4'
        " held_back=3",
    ]


def test_the_sources_held_back_are_named(caplog: pytest.LogCaptureFixture) -> None:
    # A new NAS sending from an address no client lists must be named, though another
    # unknown source was logged a moment before it; a flood of addresses names a few.
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    drops = DropLog()
    drops.drop("unknown_client", "203.0.113.9", 100.0)
    drops.drop("unknown_client", "2001:db8::1", 101.0)
    drops.drop("unknown_client", "203.0.113.9", 102.0)
    drops.flush(160.0)
    for n in range(10):
        drops.drop("unknown_client", f"198.51.100.{n}", 170.0 + n)
    drops.flush(220.0, everything=True)  # a stop tells what it holds at once
    assert lines(caplog) == [
        "drop reason=unknown_client src=203.0.113.9 total=1",
        "drop reason=unknown_client src=2001:db8::1,203.0.113.9 total=3 held_back=2",
        "drop reason=unknown_client src=198.51.100.0,198.51.100.1,198.51.100.2,198.51.100.3,..."
        " total=13 held_back=10",
    ]


def test_a_drop_after_the_minute_tells_those_held_back_with_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otpradius.server")
    drops = DropLog()
    drops.drop("overload", "192.0.2.10", 100.0, client="vpn-gw-1")
    drops.drop("overload", "192.0.2.10", 130.0, client="vpn-gw-1")
    drops.drop("overload", "192.0.2.11", 161.0, client="vpn-gw-1")  # before any flush
    drops.drop("overload", "192.0.2.10", 162.0, client="vpn-gw-1")
    assert lines(caplog) == [
        "drop reason=overload src=192.0.2.10 client=vpn-gw-1 total=1",
        "drop reason=overload src=192.0.2.10,192.0.2.11 client=vpn-gw-1 total=3 held_back=2",
    ]
