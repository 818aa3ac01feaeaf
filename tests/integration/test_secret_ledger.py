"""The ledger behind the log check of issue 3 (the sweep itself: conftest.py's
``no_secret_in_any_daemon_log``, after each process's last test)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.daemon import SecretLedger


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


def test_the_sweep_names_each_log_and_what_it_holds(tmp_path: Path) -> None:
    ledger = SecretLedger()
    ledger.add("pw-Secret123")
    clean, leaky = tmp_path / "clean.log", tmp_path / "leaky.log"
    clean.write_text("auth result=accept user=alice\n", encoding="utf-8")
    leaky.write_text("auth result=reject note=pw-Secret123\n", encoding="utf-8")
    ledger.logs += [clean, leaky]
    assert ledger.sweep() == {leaky: ["pw-Secret123"]}
