"""Logins at a fixed rate, alone and while ``otpctl db backup`` copies the database beside them.

    python -m bench.backup [--users 1000000] [--runs 3] [--rate 1000] [--seconds 4]

Onboards the users once (as ``python -m bench`` does). Each run puts the database back as
imported, starts ``otp-radiusd`` on core 1 and sends otp requests at ``--rate`` from core 0
(open loop), for other users than the peak's; in turns, once alone and once with
``otpctl db backup`` started with the first request. It prints the latency of each, and how
long the copy took: a backup must not make the NAS wait.
"""

from __future__ import annotations

import argparse
import os
import threading
from contextlib import ExitStack
from pathlib import Path

from bench import loadgen
from bench.peak import Population, onboard, restore
from bench.run import measure_server
from bench.server import start_server
from bench.workspace import (
    LOADGEN_CPU,
    OTP_SOURCE,
    SERVER_CPU,
    otp_packets,
    otpctl,
    spread,
    temporary_workspace,
)
from radiusd.wire import Codes


def run(population: Population, rate: float, seconds: float, copy: Path | None) -> str:
    """One run at ``rate``, with a backup to ``copy`` beside it if given; its table cells."""
    restore(population)
    workspace = population.workspace
    users = spread(workspace.users // 2, workspace.users, int(rate * seconds))
    packets = otp_packets(workspace, users, split=False, offsets=(0,))
    took: list[float] = []
    server = start_server(workspace, str(SERVER_CPU))
    try:
        helper = None
        if copy is not None:
            helper = threading.Thread(
                target=lambda: took.append(otpctl(workspace.root, "db", "backup", str(copy)))
            )
            helper.start()
        result, _ = measure_server(workspace, server, packets, OTP_SOURCE, rate=rate)
        if helper is not None:
            helper.join()
    finally:
        server.stop()
        if copy is not None:
            # Freeing 400 MB of blocks is itself heavy work for the file system: done here and
            # flushed, not at the start of the next run, where the server's commits would wait.
            copy.unlink(missing_ok=True)
            os.sync()
    if copy is not None and not took:
        raise SystemExit("otpctl db backup failed")
    accepted = result.codes.get(Codes.ACCESS_ACCEPT, 0)
    backup = f"{took[0]:.2f} s" if took else "–"
    return (
        f"{result.percentile(50):.2f} ms | {result.percentile(99):.2f} ms "
        f"| {result.percentile(100):.1f} ms | {result.lost} | {accepted}/{result.sent} | {backup}"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run alone and with a backup in turns, print every run."""
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests a second")
    parser.add_argument("--seconds", type=float, default=4.0, help="of requests, each run")
    args = parser.parse_args(argv)
    loadgen.pin(LOADGEN_CPU)
    with ExitStack() as stack:
        root = stack.enter_context(temporary_workspace(False))
        population = onboard(root, args.users, 1)
        copy = root / "backup.db"
        print(f"{args.users:,} users, {args.rate:,.0f} otp requests/s for {args.seconds:g} s\n")
        print("| run | backup beside | p50 | p99 | max | lost | accepted | backup took |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for number in range(1, args.runs + 1):
            for beside in (False, True):
                cells = run(population, args.rate, args.seconds, copy if beside else None)
                print(f"| {number} | {'yes' if beside else 'no'} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
