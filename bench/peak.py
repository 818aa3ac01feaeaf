"""The otp peak phase alone, repeated on fresh copies of one database, for comparing changes.

    python -m bench.peak [--users 10000] [--runs 5] [--peak-users 5000] [--vs-users N]
                         [--warm-up N]

Onboards the users once (as ``python -m bench`` does), keeps a copy of the database, and for
each run puts that copy back, starts ``otp-radiusd`` on core 1 and sends every peak user this
step's code and then the next step's from core 0. One run is noisy on a shared machine; the
median of several, each on the same starting database, is what to compare.

With ``--vs-users N`` a second population of N users is onboarded as well and the runs
alternate between the two (A B A B ...), so that both see the same machine: the median of the
ratios pair by pair is the figure for "a million users against ten thousand".

With ``--warm-up N``, N other users log in before each peak, unmeasured, so that the peak
meets a server that has been answering for a while rather than one just started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen
from bench.run import measure_server
from bench.server import start_server
from bench.workspace import (
    LOADGEN_CPU,
    OTP_SOURCE,
    SERVER_CPU,
    Workspace,
    build_workspace,
    otp_packets,
    spread,
    temporary_workspace,
)
from radiusd.wire import Codes


@dataclass
class Population:
    """One onboarded population: its workspace, pristine database copy and measured rates."""

    workspace: Workspace
    peak_users: range
    rates: list[float] = field(default_factory=list)

    @property
    def database(self) -> Path:
        """The database the server runs on."""
        return self.workspace.root / "otpradius.db"

    @property
    def pristine(self) -> Path:
        """The copy taken right after onboarding."""
        return self.workspace.root / "pristine.db"


@dataclass(frozen=True)
class PeakRun:
    """What one peak run measured."""

    rate: float
    cpu_per_request: float
    wal_mb: float
    accepted: int
    sent: int


def onboard(root: Path, users: int, peak_users: int) -> Population:
    """Onboard ``users`` users in ``root`` and keep a pristine copy of the database."""
    workspace, _ = build_workspace(root, users, workers=1)
    population = Population(workspace, spread(0, users // 2, peak_users))
    shutil.copyfile(population.database, population.pristine)
    return population


def restore(population: Population) -> None:
    """Put the pristine database back, written through to disk as an import leaves it."""
    database = population.database
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(population.pristine, database)
    # A fresh copy is hundreds of megabytes of unwritten page cache at a million users; the
    # server's first checkpoint would flush all of it in the middle of the measurement.
    descriptor = os.open(database, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def run_peak(population: Population, window: int, warm_up: int = 0) -> PeakRun:
    """Restore the database, start the server and send the peak; what it measured.

    With ``warm_up``, that many other users (of the population's second half) log in first,
    unmeasured: the peak then meets a server that has been answering, not one just started.
    """
    restore(population)
    workspace = population.workspace
    server = start_server(workspace, str(SERVER_CPU))
    try:
        if warm_up:
            users = spread(workspace.users // 2, workspace.users, warm_up)
            earlier = otp_packets(workspace, users, split=False, offsets=(0,))
            measure_server(workspace, server, earlier, OTP_SOURCE, window=window)
        packets = otp_packets(workspace, population.peak_users, split=False)
        result, cpu = measure_server(workspace, server, packets, OTP_SOURCE, window=window)
        wal = Path(f"{population.database}-wal")
        wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
    finally:
        server.stop()
    accepted = result.codes.get(Codes.ACCESS_ACCEPT, 0)
    rate = accepted / result.wall if result.wall else 0.0
    population.rates.append(rate)
    per_request = cpu / max(1, result.answered) * 1e6
    return PeakRun(rate, per_request, wal_mb, accepted, result.sent)


def _cells(run: PeakRun) -> str:
    return (
        f"{run.rate:,.0f} | {run.cpu_per_request:,.0f} µs | {run.wal_mb:.0f} MB "
        f"| {run.accepted}/{run.sent}"
    )


def repeated_runs_parser(prog: str, doc: str, runs: int) -> argparse.ArgumentParser:
    """The options shared by the benches that repeat a phase on one onboarded population."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--peak-users", type=int, default=5000, help="two requests each")
    parser.add_argument("--window", type=int, default=256, help="requests in flight (peak)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the peak phase ``--runs`` times, print each run and the median."""
    parser = repeated_runs_parser("python -m bench.peak", __doc__, runs=5)
    parser.add_argument(
        "--vs-users", type=int, default=0, help="a second population, run in turn with the first"
    )
    parser.add_argument(
        "--warm-up", type=int, default=0, help="other users who log in before each peak"
    )
    args = parser.parse_args(argv)
    loadgen.pin(LOADGEN_CPU)
    with ExitStack() as stack:
        root = stack.enter_context(temporary_workspace(False))
        first = onboard(root, args.users, args.peak_users)
        if not args.vs_users:
            print("| run | otp accepts/s | server CPU per request | WAL at the end | accepted |")
            print("| --- | --- | --- | --- | --- |")
            for number in range(1, args.runs + 1):
                cells = _cells(run_peak(first, args.window, args.warm_up))
                print(f"| {number} | {cells} |", flush=True)
            print(f"\nmedian of {args.runs}: {statistics.median(first.rates):,.0f} accepts/s "
                  f"({args.users:,} users, {len(first.peak_users):,} peak users)")  # fmt: skip
            return 0
        root = stack.enter_context(temporary_workspace(False))
        second = onboard(root, args.vs_users, args.peak_users)
        a, b = f"{args.users:,} users", f"{args.vs_users:,} users"
        print(f"| run | {a}: accepts/s | CPU per request | WAL | accepted "
              f"| {b}: accepts/s | CPU per request | WAL | accepted | ratio |")  # fmt: skip
        print("| --- " * 11 + "|")
        ratios: list[float] = []
        for number in range(1, args.runs + 1):
            run_a = run_peak(first, args.window, args.warm_up)
            run_b = run_peak(second, args.window, args.warm_up)
            ratios.append(run_a.rate / run_b.rate if run_b.rate else 0.0)
            row = f"| {number} | {_cells(run_a)} | {_cells(run_b)} | {ratios[-1]:.2f} |"
            print(row, flush=True)
        print(f"\nmedians of {args.runs} runs each ({len(first.peak_users):,} peak users): "
              f"{a} {statistics.median(first.rates):,.0f} accepts/s, "
              f"{b} {statistics.median(second.rates):,.0f} accepts/s; "
              f"median ratio pair by pair {statistics.median(ratios):.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
