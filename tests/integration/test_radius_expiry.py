"""The daemon warns about tokens nearing expiry (``[tokens] warn_days``), once at start and
then daily, one line per token."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import otpcore.admin as admin_module
from otpcore.app import App
from otpcore.model import Algorithm, TokenKind
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec
from radiusd import expiry
from radiusd.expiry import ExpiryWatch
from tests.integration.daemon import Site
from tests.integration.lifecycle import import_token


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def test_tokens_expiring_within_warn_days_are_logged_once_each(site: Site) -> None:
    now = datetime.now(UTC)
    soon = site.add_token(expires=now + timedelta(days=5))
    today = site.add_token(expires=now - timedelta(hours=2))
    long_ago = site.add_token(expires=now - timedelta(days=400))
    later = site.add_token(expires=now + timedelta(days=90))
    forever = site.add_token()
    with site.node(workers=1) as node:
        assert node.wait_for_log(f"token expiring serial={soon.serial}")
        log = node.log_text()
    assert log.count(f"serial={soon.serial}") == 1
    assert "expires_in_days=4" in log or "expires_in_days=5" in log
    # To the second, no microseconds.
    assert re.search(rf"serial={soon.serial} expires=\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ", log)
    # One that expired today is named once more; one that expired long ago is not named again.
    assert f"serial={today.serial} expires=" in log
    assert long_ago.serial not in log
    assert later.serial not in log
    assert forever.serial not in log


def test_the_expiry_check_runs_in_a_worker_never_in_the_supervisor(site: Site) -> None:
    # The check runs at start and daily. Another process holding SQLite's write lock keeps it
    # waiting up to the 60 s busy timeout (a hung PostgreSQL, for ever); in the supervisor,
    # whose signals wait while it works, that held up SIGTERM past systemd's TimeoutStopSec.
    soon = site.add_token(expires=datetime.now(UTC) + timedelta(days=5))
    with site.node(workers=2) as node:
        assert node.wait_for_log(f"token expiring serial={soon.serial}")
        assert node.process is not None
        (line,) = [x for x in node.log_text().splitlines() if "token expiring" in x]
        writer = re.search(r"otp-radiusd\[(\d+)\]", line)
        assert writer is not None
        assert int(writer.group(1)) in node.worker_pids()


def _expiry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if "token expiring" in r.getMessage()]
    caplog.clear()
    return lines


def test_a_token_expiring_between_two_daily_checks_is_said_expired_once(
    app: App, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A daily check starts a day after the last one ended, so checks lie a little more than a
    # day apart; a check may also fail (the database away) and leave a day out. A token that
    # expired in such a gap was past the one-day look-back at the next check: its "expired"
    # line, the one monitoring waits for, never came.
    expires = datetime(2026, 12, 2, tzinfo=UTC)
    import_token(app, "EXPIRING", expires=expires)
    watch = ExpiryWatch(app, warn_days=30)
    caplog.set_level("WARNING", logger="otpradius.server")
    clock.now = expires - timedelta(milliseconds=10)
    watch.warn_expiring_tokens()
    assert [line.split()[-2] for line in _expiry_lines(caplog)] == ["expires_in_days=0"]
    clock.now += timedelta(days=1, milliseconds=40)  # the next check, its run time later
    watch.warn_expiring_tokens()
    assert [line.split()[-2] for line in _expiry_lines(caplog)] == ["expired"]
    clock.now += timedelta(days=1)
    watch.warn_expiring_tokens()
    assert _expiry_lines(caplog) == []  # said once, not every day after

    # A check that failed leaves its day to the next one that runs.
    later = datetime(2026, 12, 20, tzinfo=UTC)
    import_token(app, "LATER", secret=bytes(range(40, 60)), expires=later)
    clock.now = later - timedelta(hours=1)
    watch.warn_expiring_tokens()
    _expiry_lines(caplog)
    clock.now += timedelta(days=2)  # yesterday's check found the database unreachable
    watch.warn_expiring_tokens()
    assert [line.split()[1:] for line in _expiry_lines(caplog)] == [
        ["expiring", "serial=LATER", "expires=2026-12-20T00:00:00+00:00", "expired", "users=-"]
    ]
    watch.shutdown()


def test_a_lot_of_tokens_expiring_together_is_counted_past_the_first_named(
    app: App, clock: FrozenClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bank's tokens bought in one lot expire on one day: a line each for a million of them,
    # every day for warn_days days, would bury every other line of the log.
    monkeypatch.setattr(expiry, "EXPIRY_LINES_MAX", 3)
    monkeypatch.setattr(admin_module, "LISTING_SLICE", 2)  # and read across slices
    start = datetime(2026, 12, 2, tzinfo=UTC)
    for index in range(7):
        expires = start + timedelta(days=7 - index)
        import_token(app, f"LOT{index}", secret=bytes(range(index, index + 20)), expires=expires)
    watch = ExpiryWatch(app, warn_days=30)
    caplog.set_level("WARNING", logger="otpradius.server")
    clock.now = start
    watch.warn_expiring_tokens()
    lines = _expiry_lines(caplog)
    assert [line.split()[2] for line in lines[:3]] == ["serial=LOT6", "serial=LOT5", "serial=LOT4"]
    assert lines[3:] == [
        "token expiring more=4: otpctl token list --expiring-within 30 names them all"
    ]
    watch.shutdown()


def _import_lot(app: App, prefix: str, count: int, expires: datetime) -> None:
    def seed(index: int) -> bytes:
        return hashlib.sha256(f"{prefix}{index}".encode()).digest()[:20]

    specs = [
        TokenSpec(f"{prefix}{i:04d}", seed(i), TokenKind.HARDWARE, Algorithm.SHA1, 6, 60, expires)
        for i in range(count)
    ]
    app.admin().import_tokens(specs)


def _statements_of_a_check(app: App, watch: ExpiryWatch) -> int:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(app.store.engine, "before_cursor_execute", count)
    try:
        watch.warn_expiring_tokens()
    finally:
        event.remove(app.store.engine, "before_cursor_execute", count)
    return len(statements)


@pytest.mark.parametrize("expired", [True, False])
def test_the_daily_check_reads_no_more_for_more_tokens(
    app: App,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    expired: bool,
) -> None:
    # A million tokens of one lot, expired last year (or expiring this month): the daily check
    # read every one of them, 3,000 statements and 23 s a day on the first worker, to name
    # none (or 1,000 and count the rest).
    monkeypatch.setattr(expiry, "EXPIRY_LINES_MAX", 3)
    monkeypatch.setattr(admin_module, "LISTING_SLICE", 2)
    lot = clock() - timedelta(days=400) if expired else clock() + timedelta(days=10)
    watch = ExpiryWatch(app, warn_days=30)
    caplog.set_level("WARNING", logger="otpradius.server")
    _import_lot(app, "A", 6, lot)
    few = _statements_of_a_check(app, watch)
    lines = _expiry_lines(caplog)
    _import_lot(app, "B", 30, lot)
    many = _statements_of_a_check(app, watch)
    more = _expiry_lines(caplog)
    assert many == few
    if expired:
        assert lines == more == []
    else:
        assert len(lines) == len(more) == 4
        assert more[-1].startswith("token expiring more=33: ")
    watch.shutdown()
