"""The session-wide log check of issue 3: no password, OTP, seed or shared secret in any log.

Every value the harness created or sent during this session (``daemon.LEDGER``) is searched for
in every otp-radiusd log written during it. Each node already checks its own log when it stops;
this sweep also covers nodes that were killed and values sent after a node stopped. The module
is named to run after the other ``test_radius_*`` modules, in pytest's default file order.
"""

from __future__ import annotations

import pytest

from tests.integration.daemon import LEDGER, SecretLedger


def test_no_secret_in_any_daemon_log_of_the_session() -> None:
    if not LEDGER.logs:
        pytest.skip("no otp-radiusd ran in this session")
    assert LEDGER.values, "the harness recorded no secrets: the check would prove nothing"
    leaks = LEDGER.sweep()
    assert not leaks, f"secrets found in logs: {leaks}"


def test_the_check_finds_what_it_looks_for() -> None:
    ledger = SecretLedger()
    ledger.add("pw-Secret123", "012345", b"s-0123456789abcdef", "short")
    line = "2026-01-01 00:00:00,000 otp-radiusd[012345] INFO auth result=reject user=x ms=1.0"
    assert ledger.leaks(line) == []  # a pid is not an OTP; short values are not tracked
    assert ledger.leaks(line + " otp=012345") == ["012345"]
    assert ledger.leaks(line + " otp=9012345") == []  # only whole numbers
    assert ledger.leaks(f"{line} note=pw-Secret123s-0123456789abcdef") == [
        "pw-Secret123",
        "s-0123456789abcdef",
    ]
