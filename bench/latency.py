"""The otp latency at half peak, repeated on fresh copies of one database.

    python -m bench.latency [--users 10000] [--runs 9] [--peak-users 5000] [--workers 1]
                            [--rate R]

One latency phase of ``python -m bench`` lasts about two seconds, so a single pause of the host
of 15 ms decides its p99. This runs the phase ``--runs`` times as the bench does (database as
imported, server on core 1, generator on core 0, the otp peak first, then half of that peak's
rate, open loop, for other users) and prints each run, the median p99 and the p99 of every
request of every run taken together. With ``--workers 2`` (the default configuration's count),
both workers share core 1 and the SQLite file, and their commits take turns. With ``--rate``,
the phase runs at that many requests a second instead, without finding the peak first: the
server CPU a request then shows what a rate costs, as commits hold fewer requests the lower
it is. A latency ends when the kernel queued the answer on the generator's socket; "p99 as
read" ends when the generator read it, and so also counts the pauses of the generator's core.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack

from bench import loadgen
from bench.peak import Population, onboard, repeated_runs_parser, restore
from bench.run import measure_server
from bench.server import start_server
from bench.workspace import (
    LATENCY_USERS,
    LOADGEN_CPU,
    OTP_SOURCE,
    SERVER_CPU,
    otp_packets,
    spread,
    temporary_workspace,
    write_config,
)
from radiusd.wire import Codes

TARGET_MS = 10.0


def run_latency(
    population: Population, window: int, workers: int = 1, rate: float = 0.0
) -> tuple[float, loadgen.RunResult, float]:
    """Restore, start, find the peak unless ``rate`` is given, then run at half of it (or at
    ``rate``): (rate, result, server CPU seconds)."""
    restore(population)
    workspace = population.workspace
    server = start_server(workspace, str(SERVER_CPU), workers)
    try:
        if not rate:
            packets = otp_packets(workspace, population.peak_users, split=False)
            peak, _ = measure_server(workspace, server, packets, OTP_SOURCE, window=window)
            rate = max(100.0, peak.codes.get(Codes.ACCESS_ACCEPT, 0) / peak.wall / 2)
        others = spread(workspace.users // 2, workspace.users, LATENCY_USERS)
        packets = otp_packets(workspace, others, split=False)
        result, cpu = measure_server(workspace, server, packets, OTP_SOURCE, rate=rate)
    finally:
        server.stop()
    return rate, result, cpu


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the latency phase ``--runs`` times, print each run and a summary."""
    parser = repeated_runs_parser("python -m bench.latency", __doc__, runs=9)
    parser.add_argument("--workers", type=int, default=1, help="worker processes, on core 1")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (default: half peak)")
    args = parser.parse_args(argv)
    loadgen.pin(LOADGEN_CPU)
    p99s: list[float] = []
    merged = loadgen.RunResult()
    with ExitStack() as stack:
        root = stack.enter_context(temporary_workspace(False))
        population = onboard(root, args.users, args.peak_users)
        if args.workers != 1:
            write_config(root, population.workspace.port, args.workers)
        print("| run | rate | p50 | p99 | max | p99 as read | server busy "
              "| server CPU a request | lost | accepted |")  # fmt: skip
        print("| --- " * 10 + "|")
        for number in range(1, args.runs + 1):
            rate, result, cpu = run_latency(population, args.window, args.workers, args.rate)
            busy = cpu / result.wall if result.wall else 0.0
            per_request = cpu / max(1, result.answered) * 1e6
            p99s.append(result.percentile(99))
            merged.latencies.extend(result.latencies)
            merged.read_latencies.extend(result.read_latencies)
            accepted = result.codes.get(Codes.ACCESS_ACCEPT, 0)
            print(f"| {number} | {rate:,.0f}/s | {result.percentile(50):.2f} ms "
                  f"| {p99s[-1]:.2f} ms | {result.percentile(100):.1f} ms "
                  f"| {result.percentile(99, as_read=True):.2f} ms | {busy:.0%} "
                  f"| {per_request:,.0f} µs | {result.lost} | {accepted}/{result.sent} |",
                  flush=True)  # fmt: skip
    within = sum(p99 <= TARGET_MS for p99 in p99s)
    print(f"\nmedian p99 of {args.runs} runs: {statistics.median(p99s):.2f} ms; "
          f"{within} of {args.runs} runs at {TARGET_MS:.0f} ms or less; "
          f"p99 of all {len(merged.latencies):,} requests together: "
          f"{merged.percentile(99):.2f} ms ({merged.percentile(99, as_read=True):.2f} ms "
          "as the generator read them)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
