"""A flood: otp requests from one NAS at a fixed rate above what the server can decide.

    python -m bench.flood [--users 16000] [--rate 6000] [--runs 3]

Every user's code for this step and the next is sent from core 0 at ``--rate`` a second, open
loop, to one worker on core 1 (the otp peak of ``python -m bench`` is a few thousand a
second). Nothing is resent: a request the server drops stays unanswered, as it would until
the NAS's next try. Each run prints what was answered and how late, and the worker's peak
memory: a server that queued without bound would answer everything, seconds late, and grow.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from bench import loadgen
from bench.peak import onboard, restore
from bench.run import measure_server
from bench.server import start_server
from bench.workspace import LOADGEN_CPU, OTP_SOURCE, SERVER_CPU, otp_packets, temporary_workspace

# The generator has 128 source ports of 256 identifiers each, and an identifier stays taken
# until its answer or until the generator gives up: two codes each for up to this many users
# never wait for one.
MOST_USERS = 16_384


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, flood ``--runs`` times, print a row per run."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.flood", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=16_000, help="two requests each")
    parser.add_argument("--rate", type=float, default=6_000.0, help="requests/s offered")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not 0 < args.users <= MOST_USERS:
        parser.error(f"--users: 1 to {MOST_USERS:,}")
    loadgen.pin(LOADGEN_CPU)
    with ExitStack() as stack:
        population = onboard(stack.enter_context(temporary_workspace(False)), args.users, 1)
        workspace = population.workspace
        packets = otp_packets(workspace, range(args.users), split=False)
        print("| run | offered | answered | unanswered | answers/s | p50 | p99 | latest "
              "| worker peak RSS |")  # fmt: skip
        print("| --- " * 9 + "|")
        for number in range(1, args.runs + 1):
            restore(population)
            server = start_server(workspace, str(SERVER_CPU))
            try:
                result, _ = measure_server(workspace, server, packets, OTP_SOURCE, rate=args.rate)
                rss = max(server.worker_rss_mb())
            finally:
                server.stop()
            late = [result.percentile(p) / 1000 for p in (50, 99, 100)]
            print(f"| {number} | {result.sent:,} at {args.rate:,.0f}/s | {result.answered:,} "
                  f"| {result.sent - result.answered:,} | {result.rate:,.0f} "
                  f"| {late[0]:.2f} s | {late[1]:.2f} s | {late[2]:.2f} s | {rss:.0f} MB |",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
