"""The daemon warns about tokens nearing expiry (``[tokens] warn_days``), once at start and
then daily, one line per token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.daemon import Site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def test_tokens_expiring_within_warn_days_are_logged_once_each(site: Site) -> None:
    now = datetime.now(UTC)
    soon = site.add_token(expires=now + timedelta(days=5))
    later = site.add_token(expires=now + timedelta(days=90))
    forever = site.add_token()
    with site.node(workers=1) as node:
        assert node.wait_for_log(f"token expiring serial={soon.serial}")
        log = node.log_text()
    assert log.count(f"serial={soon.serial}") == 1
    assert "expires_in_days=4" in log or "expires_in_days=5" in log
    assert later.serial not in log
    assert forever.serial not in log
