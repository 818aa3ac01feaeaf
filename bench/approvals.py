"""How long an approved operation over many users keeps every login waiting.

    python -m bench.approvals [--action unlock|revoke|delete|delete-tokens|key-rotate]
                              [--users 100000] [--count 40000] [--runs 3]

After an attack that sent wrong codes for many logins, an operator unlocks thousands of users
with one ``otpctl unlock``; a recalled batch of tokens is revoked the same way. Each is one
transaction, and on SQLite every login of every worker waits for its write lock meanwhile; a
worker that waits over 5 s marks the database unreachable. Onboards ``--users`` users once (as
``python -m bench`` does), then for each run puts the database back, suspends the first
``--count`` users and their tokens as five wrong codes would, and unlocks, revokes or deletes
them all in one command (``delete-tokens``: deletes the users first, then their tokens
with ``otpctl token delete``; ``key-rotate``: re-seals every token's seed with ``otpctl key
rotate``, from the onboarding's key file each run) while a probe on another connection
begins and commits an empty write transaction every 10 ms. It prints the command's wall
time and peak memory and the longest time the probe waited for the write lock: a login's
commit would have waited as long.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

from bench.peak import Population, onboard, restore
from bench.workspace import otpctl, temporary_workspace
from otpcore.crypto import read_key

ADMIN = "bench-admin"
KEY_FILE = "otpradius.key"
PRISTINE_KEY = "pristine.key"
ADMIN_PASSWORDS = "Bench-Admin-Login-1\nBench-Admin-Confirm-1\n"
CONFIRMATION = "Bench-Admin-Confirm-1\n"


def suspend(database: Path, logins: list[str], serials: list[str]) -> None:
    """Suspend these users and their tokens as five wrong codes each would have."""
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.executemany(
            "UPDATE tokens SET suspended = 1, fail_count = 5 WHERE serial = ?",
            [(serial,) for serial in serials],
        )
        connection.executemany(
            "UPDATE users SET suspended = 1, password_failures = 5 WHERE login = ?",
            [(login,) for login in logins],
        )
    with closing(sqlite3.connect(database)) as connection:
        # Into the database file, as the daemon's checkpoint would have copied them.
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class WriteLockProbe:
    """Begins and commits an empty write transaction every 10 ms; the longest wait."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> WriteLockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.database, isolation_level=None, timeout=600)
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("COMMIT")
                self.longest = max(self.longest, time.perf_counter() - started)
                self._stop.wait(0.01)
        finally:
            connection.close()


COMMANDS = {
    "unlock": ["unlock"],
    "revoke": ["revoke"],
    "delete": ["user", "delete"],
    "delete-tokens": ["token", "delete"],
    "key-rotate": ["key", "rotate"],
}
# What is left of the users (tokens) afterwards if the command did not take them all.
LEFT = {
    "unlock": "SELECT count(*) FROM users WHERE suspended AND login IN ({})",
    "revoke": "SELECT count(*) FROM users WHERE serial IS NOT NULL AND login IN ({})",
    "delete": "SELECT count(*) FROM users WHERE login IN ({})",
    "delete-tokens": "SELECT count(*) FROM tokens WHERE serial IN ({})",
}
# The seeds still sealed under the key the rotation started from (its id after the version).
LEFT_SEALED = "SELECT count(*) FROM tokens WHERE substr(sealed_secret, 2, 8) = ?"


def unbind(database: Path, logins: list[str]) -> None:
    """Delete these users, so that their tokens can be deleted (not timed)."""
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.executemany("DELETE FROM users WHERE login = ?", [(x,) for x in logins])
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def put_key_back(population: Population) -> bytes:
    """Put back the key file onboarding left, which the restored seeds name; its key id."""
    root = population.workspace.root
    Path(f"{root / KEY_FILE}.new").unlink(missing_ok=True)
    shutil.copy2(root / PRISTINE_KEY, root / KEY_FILE)
    return read_key(root / KEY_FILE).kid


def run(population: Population, action: str, count: int) -> tuple[float, float, float]:
    """One ``action`` over ``count`` suspended users (or their tokens): wall seconds, peak
    MiB, longest wait."""
    restore(population)
    workspace = population.workspace
    logins = [workspace.login(index) for index in range(count)]
    serials = [workspace.serial(index) for index in range(count)]
    suspend(population.database, logins, serials)
    targets = logins
    if action == "delete-tokens":
        unbind(population.database, logins)
        targets = serials
    command = ["otpctl", "--config", str(workspace.config), *COMMANDS[action]]
    if action == "key-rotate":
        kid = put_key_back(population)
        targets = []
    else:
        command += ["--admin", ADMIN, "--password-stdin"]
    with tempfile.TemporaryFile() as answer, tempfile.TemporaryFile() as output:
        answer.write(CONFIRMATION.encode())
        answer.seek(0)
        with WriteLockProbe(population.database) as probe:
            started = time.perf_counter()
            process = subprocess.Popen(
                [*command, *targets],
                stdin=answer,
                stdout=subprocess.DEVNULL,
                stderr=output,
            )
            # wait4, not wait: the command's own peak memory, not the largest of any child's.
            _, status, usage = os.wait4(process.pid, 0)
            took = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        error = output.read().decode(errors="replace").strip()
    if process.returncode != 0:
        sys.exit(f"bench.approvals: otpctl {action} failed: {error}")
    left = 0
    with closing(sqlite3.connect(population.database)) as connection:
        if action == "key-rotate":
            left = connection.execute(LEFT_SEALED, (kid,)).fetchone()[0]
        for start in range(0, len(targets), 500):
            part = targets[start : start + 500]
            query = LEFT[action].format(",".join("?" * len(part)))
            left += connection.execute(query, part).fetchone()[0]
    if left:
        sys.exit(f"bench.approvals: {left} were not taken by otpctl {action}")
    return took, usage.ru_maxrss / 1024, probe.longest


def main(argv: list[str] | None = None) -> int:
    """Run the unlocks and print a markdown table."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.approvals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--action", choices=sorted(COMMANDS), default="unlock")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=40_000, help="users the command takes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args(argv)
    if not 0 < args.count <= args.users:
        parser.error("--count must be between 1 and --users")
    with temporary_workspace(args.keep) as root:
        population = onboard(root, args.users, 1)
        otpctl(root, "user", "add", ADMIN, "--name", "Bench", "--class", "admin",
               "--password-stdin", stdin=ADMIN_PASSWORDS)  # fmt: skip
        # Into the copy every run starts from.
        with closing(sqlite3.connect(population.database)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(population.database, population.pristine)
        shutil.copy2(root / KEY_FILE, root / PRISTINE_KEY)
        results = [run(population, args.action, args.count) for _ in range(args.runs)]
    what = f"{args.count:,} of {args.users:,} users"
    if args.action == "key-rotate":
        what = f"the seeds of {args.users:,} users"
    print(f"| {args.action} of {what} | wall s | peak MiB | longest wait for the write lock, s |")
    print("| --- | --- | --- | --- |")
    for index, (took, peak, longest) in enumerate(results, 1):
        print(f"| run {index} | {took:.2f} | {peak:.0f} | {longest:.2f} |")
    print(f"| median | {statistics.median(r[0] for r in results):.2f} | | "
          f"{statistics.median(r[2] for r in results):.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
