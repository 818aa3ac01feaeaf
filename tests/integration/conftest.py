"""Fixtures for tests that run real daemons (see daemon.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_turns import TURNS
from tests.conftest import PG_URL_ENV, require_service
from tests.integration.daemon import LEDGER, Site


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_daemon_log() -> Iterator[None]:
    """After this process's last test: no password, OTP, seed or shared secret in any log.

    Every value the harness created or sent (``daemon.LEDGER``) is searched for in every
    otp-radiusd log written by this process's tests (issue 3). Each node already checks its
    own log when it stops; this sweep also covers nodes that were killed and values sent
    after a node stopped. A leak fails the run as an error in the last test's tear-down.
    """
    yield
    if not LEDGER.logs:
        return
    assert LEDGER.values, "the harness recorded no secrets: the check would prove nothing"
    leaks = LEDGER.sweep()
    assert not leaks, f"secrets found in logs: {leaks}"


@pytest.fixture
def pg_site(tmp_path: Path) -> Iterator[Site]:
    """A site on its own fresh PostgreSQL database (skips, or fails in CI, without one)."""
    url = os.environ.get(PG_URL_ENV)
    require_service(f"postgresql ({PG_URL_ENV})", bool(url))
    assert url is not None
    with Site.postgresql(url, tmp_path) as site:
        yield site


def pg_cluster_control() -> list[str]:
    """``pg_ctlcluster VERSION NAME`` for the test cluster, or skip/fail when unknown."""
    cluster = os.environ.get("OTPRADIUS_TEST_PG_CLUSTER", "").split()
    tool = shutil.which("pg_ctlcluster")
    require_service("pg_ctlcluster (OTPRADIUS_TEST_PG_CLUSTER)", len(cluster) == 2 and bool(tool))
    assert tool is not None
    if not TURNS.alone:
        pytest.fail("a test that stops the PostgreSQL cluster must be marked stops_postgresql")
    return [tool, *cluster]
