"""The benchmark and the repeated peak run end to end on a few users (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_command

REPO = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a bench module from the repository, as README shows; fails the test if it fails."""
    require_command("taskset")
    require_command("otpctl")
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_quick_benchmark_prints_its_table() -> None:
    done = run_bench("bench", "--quick")
    table = done.stdout
    assert "| figure | value | note |" in table
    for figure in ("otp accepts/s", "status answers/s", "latency", "login (split)", "start-up"):
        assert figure in table, table
    assert "lost 0" in table, table
    # The latency row says how much of its core the server used, and the header where the
    # databases were (an fsync on tmpfs costs nothing and would flatter every figure).
    latency = next(line for line in table.splitlines() if "latency" in line)
    assert re.search(r"server busy \d+% of its core \([\d,]+ µs a request\)", latency), latency
    assert "databases on " in table, table
    # The hash bound is measured in turns with the logins, and each turn's ratio is shown.
    login = next(line for line in table.splitlines() if "login (split)" in line)
    assert re.search(r"× hash bound \(turns [\d.]+ to [\d.]+\); 20/20 accepted", login), login
    assert "in 5 turns with the logins" in table, table


def test_the_repeated_peak_restores_the_database_for_every_run() -> None:
    done = run_bench("bench.peak", "--users", "200", "--runs", "2", "--peak-users", "50")
    # Both runs accept every request: the second starts from the database as imported, not
    # from one where the first run already spent these codes.
    assert done.stdout.count("| 100/100 |") == 2, done.stdout
    assert "median of 2:" in done.stdout, done.stdout


def test_two_populations_run_in_turn_with_a_ratio_per_pair() -> None:
    done = run_bench(
        "bench.peak", "--users", "300", "--vs-users", "200", "--runs", "2", "--peak-users", "50",
        "--warm-up", "60",
    )  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")
            or line.startswith("| 2 |")]  # fmt: skip
    assert len(rows) == 2, done.stdout
    # Each row holds one run of each population, every request accepted (the warm-up's users
    # are others than the peak's), and their ratio.
    for row in rows:
        assert row.count("| 100/100 |") == 2, row
    assert "median ratio pair by pair" in done.stdout, done.stdout


def test_the_repeated_latency_phase_prints_every_run_and_their_median() -> None:
    done = run_bench("bench.latency", "--users", "300", "--runs", "2", "--peak-users", "50")
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2, done.stdout
    # Each run starts from the database as imported: every code of the phase is accepted.
    assert all(row.endswith("| 0 | 300/300 |") for row in rows), done.stdout
    assert re.search(
        r"median p99 of 2 runs: [\d.]+ ms; \d of 2 runs at 10 ms or less; "
        r"p99 of all 600 requests together: [\d.]+ ms",
        done.stdout,
    ), done.stdout


def test_the_latency_phase_runs_at_a_given_rate() -> None:
    done = run_bench("bench.latency", "--users", "300", "--runs", "1", "--peak-users", "50",
                     "--rate", "200")  # fmt: skip
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert row.startswith("| 1 | 200/s | "), row
    assert re.search(r"\| [\d,]+ µs \| 0 \| 300/300 \|$", row), row


def test_the_store_comparison_spends_every_step_in_turn() -> None:
    done = run_bench(
        "bench.store", "--users", "300", "--vs-users", "200", "--runs", "2", "--peak-users", "50"
    )
    # Every step was recorded (a refused one stops the run), each pair printed with its ratio.
    pair = r"run \d: 300 users [\d.]+ µs, 200 users [\d.]+ µs, ratio [\d.]+"
    runs = re.findall(pair, done.stdout)
    assert len(runs) == 2, done.stdout
    assert re.search(
        r"medians of 2 runs \(50 peak users, two requests each\): [\d.]+ µs against [\d.]+ µs "
        r"of CPU a request, median pair ratio [\d.]+",
        done.stdout,
    ), done.stdout


def test_the_backup_comparison_runs_alone_and_beside_a_backup() -> None:
    done = run_bench(
        "bench.backup", "--users", "300", "--runs", "1", "--rate", "200", "--seconds", "1"
    )
    alone = re.search(r"^\| 1 \| no \|.* \| 0 \| 150/150 \| – \|$", done.stdout, re.M)
    beside = re.search(r"^\| 1 \| yes \|.* \| 0 \| 150/150 \| [\d.]+ s \|$", done.stdout, re.M)
    assert alone, done.stdout
    assert beside, done.stdout


def test_the_flood_prints_a_row_per_run() -> None:
    # At a rate one worker keeps up with, every request is answered (none dropped).
    done = run_bench("bench.flood", "--users", "200", "--rate", "200", "--runs", "1")
    row = re.search(r"^\| 1 \| 400 at 200/s \| 400 \| 0 \| [\d,]+ \|( [\d.]+ s \|){3} \d+ MB \|$",
                    done.stdout, re.M)  # fmt: skip
    assert row, done.stdout


@pytest.mark.parametrize(
    ("action", "runs"),
    [("unlock", 2), ("revoke", 1), ("delete", 1), ("delete-tokens", 1), ("key-rotate", 2)],
)
def test_the_approvals_bench_takes_every_user_in_each_run(action: str, runs: int) -> None:
    # It stops with an error if otpctl fails or leaves any of the users (or seeds) untaken;
    # a second rotation must start from the key the restored seeds name.
    done = run_bench("bench.approvals", "--action", action, "--users", "300", "--count", "120",
                     "--runs", str(runs))  # fmt: skip
    rows = re.findall(r"^\| run \d \| [\d.]+ \| \d+ \| [\d.]+ \|$", done.stdout, re.M)
    assert len(rows) == runs, done.stdout
    what = "the seeds of 300 users" if action == "key-rotate" else "120 of 300 users"
    assert f"| {action} of {what} |" in done.stdout


def test_the_commit_probe_prints_both_sync_modes() -> None:
    done = run_bench("bench.commit", "--commits", "30")
    rows = [line for line in done.stdout.splitlines() if line.startswith("| FULL")
            or line.startswith("| NORMAL")]  # fmt: skip
    assert len(rows) == 4, done.stdout
    assert all(row.endswith(" µs |") for row in rows), done.stdout


def test_a_workspace_in_memory_is_called_out() -> None:
    from bench.workspace import disk_note, filesystem

    assert "fsync costs nothing" not in disk_note(REPO)
    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem(shm) != "tmpfs":
        return  # nothing in memory to point at on this host; the disk case is checked above
    assert "fsync costs nothing" in disk_note(shm)
