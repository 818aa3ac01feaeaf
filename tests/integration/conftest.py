"""Fixtures for tests that run real daemons (see daemon.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL_ENV, require_service
from tests.integration.daemon import Site


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
    return [tool, *cluster]
