"""The request path keeps the pages it has read: a large population is not read twice.

SQLite's default page cache (2 MiB) does not hold the inner pages of the users' tree at a
million users, so each request read them from the file again. The request path's connection
keeps up to 32 MiB; this population's users fill about 4 MiB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from otpcore.app import App
from otpcore.onboarding import import_users
from otpcore.user_csv import UserSpec

USERS = 12_000


def _read_calls() -> int:
    """Read system calls this process has made so far (every thread's)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    raise AssertionError("no syscr in /proc/self/io")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/io")
def test_users_read_once_are_read_again_without_touching_the_file(app: App) -> None:
    # About 350 bytes a row (a long name and a hash), so 12,000 users take some 4 MiB.
    digest = app.hashing.hash("correct horse 7")
    name = "x" * 200
    rows = [UserSpec(f"user{n:06d}", name, password_hash=digest) for n in range(USERS)]
    import_users(app.store, app.hashing, app.clock, rows)
    logins = [row.login for row in rows]
    for login in logins:
        assert app.hot.user(login) is not None

    before = _read_calls()
    for login in logins:
        assert app.hot.user(login) is not None
    # With SQLite's default cache this second pass reads about a thousand pages again.
    assert _read_calls() - before < 50
