"""The otp peak phase alone, repeated on fresh copies of one database, for comparing changes.

    python -m bench.peak [--users 10000] [--runs 5] [--peak-users 5000]

Onboards the users once (as ``python -m bench`` does), keeps a copy of the database, and for
each run puts that copy back, starts ``otp-radiusd`` on core 1 and sends every peak user this
step's code and then the next step's from core 0. One run is noisy on a shared machine; the
median of several, each on the same starting database, is what to compare.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

from bench import loadgen
from bench.run import (
    LOADGEN_CPU,
    OTP_SOURCE,
    SERVER_CPU,
    build_workspace,
    measure_server,
    otp_packets,
    spread,
    start_server,
    temporary_workspace,
)
from radiusd.packets import Codes


def _restore(database: Path, pristine: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(pristine, database)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the peak phase ``--runs`` times, print each run and the median."""
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.peak", description=summary)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peak-users", type=int, default=5000, help="two requests each")
    parser.add_argument("--window", type=int, default=256, help="requests in flight")
    args = parser.parse_args(argv)
    loadgen.pin(LOADGEN_CPU)
    with temporary_workspace(keep=False) as root:
        workspace, _ = build_workspace(root, args.users, workers=1)
        database = root / "otpradius.db"
        pristine = root / "pristine.db"
        shutil.copyfile(database, pristine)
        users = spread(0, args.users // 2, args.peak_users)
        print("| run | otp accepts/s | server CPU per request | WAL at the end | accepted |")
        print("| --- | --- | --- | --- | --- |")
        rates: list[float] = []
        for number in range(1, args.runs + 1):
            _restore(database, pristine)
            server = start_server(workspace, str(SERVER_CPU))
            try:
                packets = otp_packets(workspace, users, split=False)
                result, cpu = measure_server(
                    workspace, server, packets, OTP_SOURCE, window=args.window
                )
                wal = Path(f"{database}-wal")
                wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
            finally:
                server.stop()
            accepts = result.codes.get(Codes.ACCESS_ACCEPT, 0)
            rate = accepts / result.wall if result.wall else 0.0
            rates.append(rate)
            per_request = cpu / max(1, result.answered) * 1e6
            print(
                f"| {number} | {rate:,.0f} | {per_request:,.0f} µs | {wal_mb:.0f} MB "
                f"| {accepts}/{result.sent} |"
            )
        print(f"\nmedian of {args.runs}: {statistics.median(rates):,.0f} accepts/s "
              f"({args.users:,} users, {len(users):,} peak users)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
