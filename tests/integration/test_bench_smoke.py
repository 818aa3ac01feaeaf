"""The benchmark runs end to end in its quick mode (a smoke test: no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_command

REPO = Path(__file__).resolve().parents[2]


def test_the_quick_benchmark_prints_its_table() -> None:
    require_command("taskset")
    require_command("otpctl")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout
    assert "| figure | value | note |" in table
    for figure in ("otp accepts/s", "status answers/s", "latency", "login (split)", "start-up"):
        assert figure in table, table
    assert "lost 0" in table, table


def test_the_repeated_peak_restores_the_database_for_every_run() -> None:
    require_command("taskset")
    require_command("otpctl")
    done = subprocess.run(
        [sys.executable, "-m", "bench.peak", "--users", "200", "--runs", "2", "--peak-users", "50"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Both runs accept every request: the second starts from the database as imported, not
    # from one where the first run already spent these codes.
    assert done.stdout.count("| 100/100 |") == 2, done.stdout
    assert "median of 2:" in done.stdout, done.stdout
