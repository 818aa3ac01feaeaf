"""Fixtures shared by every test: settings, an initialised database, a frozen clock."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from otpcore.app import App, build_app
from otpcore.config import Settings, parse_settings
from otpcore.keys import create_key
from otpcore.ports import FrozenClock
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import upgrade
from tests.cluster_turns import TURNS

PG_URL_ENV = "OTPRADIUS_TEST_PG_URL"
# Modules whose tests run on both databases say: pytestmark = BOTH_BACKENDS
BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
_TABLES = ("challenges", "audit_events", "users", "tokens")

# Cheap argon2id parameters keep the suite fast; the default cost is measured by the bench.
FAST_HASHING = {"time_cost": 1, "memory_kib": 64, "parallelism": 1}
T0 = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC)


# The files that take longest, longest first (from --durations). README's command runs each
# file whole in one of two processes, in the order collected: one of these begun last kept
# the other process idle for a minute at the end.
LONGEST_FIRST = (
    "tests/integration/test_radius_operations.py",
    "tests/integration/test_cli_manual.py",
    "tests/integration/test_multinode.py",
    "tests/integration/test_bench_smoke.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the longest files first; every other test keeps its place."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    """Run each test, its fixtures' set-up and tear-down included, in its turn on the
    PostgreSQL cluster (tests/cluster_turns.py)."""
    with TURNS.turn(alone=item.get_closest_marker("stops_postgresql") is not None):
        return (yield)


def require_service(name: str, available: bool) -> None:
    """Skip when an external service is missing, unless CI demands every service."""
    if available:
        return
    if os.environ.get("OTPRADIUS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (OTPRADIUS_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{name} not available")


def require_command(command: str) -> str:
    """The path of a command-line tool, or skip/fail as ``require_service`` says."""
    path = shutil.which(command)
    require_service(command, path is not None)
    assert path is not None
    return path


def settings_data(**tables: dict[str, Any]) -> dict[str, Any]:
    """A configuration dict with fast hashing and one local client, overridable per table."""
    data: dict[str, Any] = {
        "hashing": dict(FAST_HASHING),
        "policy": {"reject_delay": 0},
        "logging": {"syslog": False},
        "clients": [{"name": "local", "address": "127.0.0.1/32", "secret": "testing123-secret"}],
    }
    for name, values in tables.items():
        if name == "clients":
            data["clients"] = values
        else:
            data.setdefault(name, {}).update(values)
    return data


def scratch_database(base_url: str) -> str:
    """Create an empty PostgreSQL database beside ``base_url``'s; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"otpradius_t_{secrets.token_hex(6)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, url: str) -> None:
    """Drop a scratch database made by ``scratch_database``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """One migrated scratch PostgreSQL database for the session (None without PostgreSQL)."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield None
        return
    url = scratch_database(base)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_database(base, url)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database a test runs on: "sqlite" unless the module parametrises it."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_tables(backend: str, request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """The ``[database]`` table for the backend; on PostgreSQL, emptied for this test."""
    if backend == "sqlite":
        return {}
    url = request.getfixturevalue("pg_database")
    require_service("postgresql", url is not None)
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return {"database": {"url": url}}


@pytest.fixture
def clock() -> FrozenClock:
    """A clock frozen at 2026-12-01T00:00:30Z; tests move it explicitly."""
    return FrozenClock(T0)


@pytest.fixture
def make_app(
    tmp_path: Path, clock: FrozenClock, database_tables: dict[str, dict[str, Any]]
) -> Iterator[Callable[..., App]]:
    """Build an App on a fresh, migrated database: a SQLite file under tmp_path, or the
    emptied PostgreSQL scratch database (the same one for every call within a test)."""
    apps: list[App] = []

    def _make(**tables: dict[str, Any]) -> App:
        settings: Settings = parse_settings(
            settings_data(**{**database_tables, **tables}),
            tmp_path / "config.toml",
            Path.read_bytes,
        )
        create_key(settings.key_file)
        create_private_sqlite_file(settings.database_url)  # as otpctl init makes it
        upgrade(make_engine(settings.database_url))
        app = build_app(settings, clock)
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.store.dispose()


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    """An App with default policy on a fresh SQLite database."""
    return make_app()
