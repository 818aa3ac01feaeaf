"""What one durable commit costs on this machine, in wall time and in CPU.

    python -m bench.commit [--commits 2000] [--folder DIR]

Commits a one-row update again and again on a scratch SQLite database in WAL mode, as the
server's database thread does, with ``synchronous=FULL`` (an fdatasync at each commit) and with
``NORMAL`` (none), back to back and with a 1 ms pause between commits (as at half load). The
CPU is the thread's own clock, so it counts what the kernel and the hypervisor charge to the
committing thread. On virtual machines an fdatasync can cost a hundred microseconds of CPU or
more; a commit that holds only a few requests then costs more per request than the rest of the
request path, which is why the latency phase of ``python -m bench`` runs its core busier than
half the peak rate suggests.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.workspace import disk_note

ROWS = 10_000


def _database(folder: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(folder / "commit.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")  # as the server: no copy-back at commit
    connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, pad BLOB) WITHOUT ROWID")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO t VALUES (?, 0, randomblob(100))", [(f"k{i:06d}",) for i in range(ROWS)]
    )
    connection.execute("COMMIT")
    return connection


def measure(connection: sqlite3.Connection, commits: int, pause: float) -> tuple[float, float]:
    """Median wall and mean thread CPU of one commit, in microseconds."""
    walls: list[float] = []
    cpu = 0
    for number in range(commits):
        key = f"k{number * 37 % ROWS:06d}"
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE t SET v = v + 1 WHERE k = ?", (key,))
        started, cpu_started = time.perf_counter(), time.thread_time_ns()
        connection.execute("COMMIT")
        cpu += time.thread_time_ns() - cpu_started
        walls.append((time.perf_counter() - started) * 1e6)
        if pause:
            time.sleep(pause)
    return statistics.median(walls), cpu / commits / 1e3


def main(argv: list[str] | None = None) -> int:
    """Print a markdown table of commit costs."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.commit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--folder", type=Path, default=None, help="where the scratch file goes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        connection = _database(Path(folder))
        print(disk_note(Path(folder)), end="\n\n")
        print("| synchronous | between commits | commit wall (median) | commit CPU (mean) |")
        print("| --- | --- | --- | --- |")
        for mode in ("FULL", "NORMAL"):
            connection.execute(f"PRAGMA synchronous={mode}")
            for pause in (0.0, 0.001):
                wall, cpu = measure(connection, args.commits, pause)
                gap = "1 ms pause" if pause else "none"
                print(f"| {mode} | {gap} | {wall:,.0f} µs | {cpu:,.0f} µs |", flush=True)
        connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
