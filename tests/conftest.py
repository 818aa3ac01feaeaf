"""Fixtures shared by every test: settings, an initialised database, a frozen clock."""

from __future__ import annotations

import os
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
from otpcore.store.schema import upgrade

# Cheap argon2id parameters keep the suite fast; the default cost is measured by the bench.
FAST_HASHING = {"time_cost": 1, "memory_kib": 64, "parallelism": 1}
T0 = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC)


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


@pytest.fixture
def clock() -> FrozenClock:
    """A clock frozen at 2026-12-01T00:00:30Z; tests move it explicitly."""
    return FrozenClock(T0)


@pytest.fixture
def make_app(tmp_path: Path, clock: FrozenClock) -> Iterator[Callable[..., App]]:
    """Build an App on a fresh, migrated SQLite file under tmp_path (same file per test)."""
    apps: list[App] = []

    def _make(**tables: dict[str, Any]) -> App:
        settings: Settings = parse_settings(
            settings_data(**tables), tmp_path / "config.toml", Path.read_bytes
        )
        create_key(settings.key_file)
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
