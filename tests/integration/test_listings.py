"""Listings read a slice of rows at a time, each slice in a read of its own.

A million users read at once held 3 GB in otpctl, on the host that runs the daemon. The slices
must still give every row once, in order, across their boundaries and across ties in the order
(tokens expiring at one instant).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import event

import otpcore.admin as admin_module
from otpcore.app import App
from otpcore.model import Algorithm, TokenKind
from otpcore.onboarding import import_users
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec
from otpcore.user_csv import UserSpec
from tests.conftest import BOTH_BACKENDS
from tests.integration.cli_support import ok, otpctl_runner, write_config

SLICE = 3


def seed(index: int) -> bytes:
    return hashlib.sha256(index.to_bytes(4, "big")).digest()[:20]  # a seed of its own a token


def populate(app: App, clock: FrozenClock, count: int) -> None:
    """``count`` tokens, expiring in twos at one instant (so that slices of three part
    tokens of one expiry), and a user bound to each; one token shared by two users and one
    user without a token."""
    specs = [
        TokenSpec(
            f"T{index:03d}",
            seed(index),
            TokenKind.HARDWARE,
            Algorithm.SHA1,
            6,
            60,
            clock() + timedelta(days=1 + index // 2),
        )
        for index in range(count)
    ]
    app.admin().import_tokens(specs)
    # Logins in the reverse order of their tokens: a listing by login is not one by serial.
    digest = app.hashing.hash("correct horse 7")
    rows = [UserSpec(f"u{count - index:03d}", f"User {index}", password_hash=digest,
                     serial=spec.serial) for index, spec in enumerate(specs)]  # fmt: skip
    rows.append(UserSpec("u999", "Sharer", password_hash=digest, serial=specs[4].serial))
    rows.append(UserSpec("u000", "No token", password_hash=digest))
    import_users(app.store, app.hashing, clock, rows)


@BOTH_BACKENDS
@pytest.mark.parametrize("count", [SLICE * 3, SLICE * 3 + 1, SLICE * 3 + 2])
def test_every_listing_gives_each_row_once_in_order_across_its_slices(
    app: App, clock: FrozenClock, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(app, clock, count)
    monkeypatch.setattr(admin_module, "LISTING_SLICE", SLICE)
    admin = app.admin()

    users = list(admin.each_user())
    logins = [f"u{n:03d}" for n in range(count + 1)] + ["u999"]
    assert [view.login for view in users] == logins
    assert [view.serial for view in users if view.login in ("u001", "u999")] == [
        f"T{count - 1:03d}",
        "T004",
    ]

    serials = [f"T{index:03d}" for index in range(count)]
    assert [token.serial for token in admin.each_token()] == serials
    shared = [token.users for token in admin.each_token() if token.serial == "T004"]
    assert shared == [(f"u{count - 4:03d}", "u999")]
    # Soonest first, tokens of one expiry by serial: every token within the horizon once.
    days = count // 2 - 1  # tokens 0 .. 2 * days - 1 expire within it
    expiring = [token.serial for token in admin.each_token(expiring_within_days=days)]
    assert expiring == serials[: 2 * days]

    events = list(admin.each_event())
    assert [event.action for event in events] == ["token_import", "user_import"]
    for index in range(count):
        admin.set_disabled(f"T{index:03d}", True)
    assert len(list(admin.each_event())) == 2 + count


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_each_slice_of_an_expiry_listing_starts_where_the_last_one_ended(
    app: App, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL's index on the expiry alone held no serial: every slice of a lot of tokens
    # that expire on one day read the lot from its first token to find where to start, and a
    # million tokens took a time that grew with the square of their number. Planned as for a
    # large table (a small one is cheaper to read whole), the last slice must read its own
    # rows and no others.
    lot = 200
    expires = clock() + timedelta(days=30)
    specs = [TokenSpec(f"L{index:04d}", seed(index), TokenKind.HARDWARE, Algorithm.SHA1, 6, 60,
                       expires) for index in range(lot)]  # fmt: skip
    app.admin().import_tokens(specs)
    monkeypatch.setattr(admin_module, "LISTING_SLICE", 20)
    slices: list[tuple[str, Any]] = []

    def keep(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY tokens.expires" in statement:
            slices.append((statement, parameters))

    event.listen(app.store.engine, "before_cursor_execute", keep)
    try:
        listed = [token.serial for token in app.admin().each_token(expiring_within_days=60)]
    finally:
        event.remove(app.store.engine, "before_cursor_execute", keep)
    assert listed == [spec.serial for spec in specs]
    statement, parameters = slices[-1]
    with app.store.engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        connection.exec_driver_sql("SET enable_sort = off")
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).scalar_one()
    scans = [node for node in _plan_nodes(plan[0]["Plan"]) if node.get("Relation Name") == "tokens"]
    read = sum(node["Actual Rows"] + node.get("Rows Removed by Filter", 0) for node in scans)
    assert read <= 20, scans


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_listing_a_large_population_takes_no_more_memory_than_listing_a_few(
    tmp_path: Path,
) -> None:
    """Listing 40,000 users held some 130 MB more than listing ten, all of it at once."""
    sizes = {}
    for count in (10, 40_000):
        folder = tmp_path / str(count)
        folder.mkdir()
        config = write_config(folder)
        otpctl = otpctl_runner(config)
        ok(otpctl("init"))
        tokens = folder / "tokens.csv"
        tokens.write_text(
            "serial,secret\n" + "".join(f"T{n:06d},{seed(n).hex()}\n" for n in range(count)),
            encoding="utf-8",
        )
        ok(otpctl("token", "import", str(tokens)))
        users = folder / "users.csv"
        digest = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("horse 7")
        users.write_text(
            "login,name,password_hash,serial\n"
            + "".join(f'u{n:06d},User {n},"{digest}",T{n:06d}\n' for n in range(count)),
            encoding="utf-8",
        )
        ok(otpctl("user", "import", str(users)))
        sizes[count] = {
            listing: _peak_rss_kib(config, *listing)
            for listing in (("user", "list"), ("user", "list", "--json"), ("token", "list"))
        }
    for listing, small in sizes[10].items():
        grown = sizes[40_000][listing] - small
        assert grown < 25_000, (listing, grown)


# Run otpctl and report its peak resident size as the process's last line on stderr.
# VmHWM, not wait4's ru_maxrss: that counts the forking test process's pages as well.
_MEASURED = """
import runpy, sys
sys.argv = ["otpctl", *sys.argv[1:]]
try:
    runpy.run_module("cli.main", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    print("peak", *peak, file=sys.stderr)
"""


def _peak_rss_kib(config: Path, *command: str) -> int:
    """The peak resident size of an otpctl run, in KiB."""
    env = {**os.environ, "LANG": "C.UTF-8", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "--config", str(config), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        check=True,
        text=True,
    )
    return int(done.stderr.splitlines()[-1].split()[1])
