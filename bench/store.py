"""The database's own share of an otp request, at two population sizes, without the server.

    python -m bench.store [--users 1000000] [--vs-users 10000] [--runs 6]
                          [--cache-kib N] [--mmap-mib N]

Onboards both populations as ``python -m bench`` does, then, on core 1 and in turns on fresh
copies of each database, does what the server's database thread does for the otp peak: for
every batch of 125 requests it reads each request's user and token, then records each used
step in one transaction, with the peak's users and order (this step, then the next). It
prints the CPU time a request costs, per run and as medians, and the pair ratio.

This is what separates a million users from ten thousand once the packets, the TOTP and the
replies are taken away: how many pages a request finds outside SQLite's cache and the CPU's.
``--cache-kib`` and ``--mmap-mib`` try another page cache size (the server's is
``HOT_CACHE_KIB``, 32 MiB) and memory-mapped reads (the server uses none) on this connection.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from bench.peak import Population, onboard, restore
from bench.workspace import PEAK_USERS, SERVER_CPU, temporary_workspace
from otpcore.store import hot_connections
from otpcore.store.engine import make_engine
from otpcore.store.hot import HotStore

BATCH = 125  # about what one commit holds at the otp peak


def requests(population: Population) -> list[tuple[str, str]]:
    """The peak's (login, serial) pairs in the order ``bench`` sends them, twice over."""
    workspace = population.workspace
    indices = list(population.peak_users)
    random.Random(len(indices)).shuffle(indices)
    pairs = [(workspace.login(index), workspace.serial(index)) for index in indices]
    return pairs + pairs


def run(population: Population, cache_kib: int, mmap_mib: int) -> float:
    """Restore the database and play the peak against it; CPU microseconds a request."""
    restore(population)
    engine = make_engine(f"sqlite:///{population.database}", unpooled=True)

    @event.listens_for(engine, "connect")
    def _tune(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        if mmap_mib:
            cursor.execute(f"PRAGMA mmap_size={mmap_mib * 1024 * 1024}")
        cursor.close()

    # HotStore sets the cache size itself as it opens its connection, after this hook.
    hot_connections.HOT_CACHE_KIB = cache_kib
    store = HotStore(engine)
    work = requests(population)
    half = len(work) // 2
    identities = [secrets.token_bytes(32) for _ in work]
    now = datetime.now(UTC)
    started = time.process_time()
    for first in range(0, len(work), BATCH):
        batch = work[first : first + BATCH]
        tokens = []
        for login, serial in batch:
            token = store.token(serial)
            if store.user(login) is None or token is None:
                raise SystemExit(f"{login} or {serial} missing from {population.database}")
            tokens.append(token)
        with store.transaction() as writer:
            for offset, (login, serial) in enumerate(batch, start=first):
                step = 1 if offset < half else 2
                token = tokens[offset - first]
                identity = identities[offset]
                used = writer.consume_step(
                    login, serial, step, token.period, identity, token.sealed_secret, now=now
                )
                if not used:
                    raise SystemExit(f"step {step} of {serial} was refused")
    spent = time.process_time() - started
    engine.dispose()
    return spent / len(work) * 1e6


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--vs-users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--peak-users", type=int, default=PEAK_USERS, help="two requests each")
    parser.add_argument(
        "--cache-kib",
        type=int,
        default=hot_connections.HOT_CACHE_KIB,
        help="SQLite page cache size",
    )
    parser.add_argument("--mmap-mib", type=int, default=0, help="memory-mapped reads, up to")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {SERVER_CPU})
    with ExitStack() as stack:
        big = onboard(stack.enter_context(temporary_workspace(args.keep)), args.users,
                      args.peak_users)  # fmt: skip
        small = onboard(stack.enter_context(temporary_workspace(args.keep)), args.vs_users,
                        args.peak_users)  # fmt: skip
        costs: dict[int, list[float]] = {args.users: [], args.vs_users: []}
        ratios = []
        for turn in range(args.runs):
            order = (big, small) if turn % 2 == 0 else (small, big)
            for population in order:
                costs[population.workspace.users].append(
                    run(population, args.cache_kib, args.mmap_mib)
                )
            ratio = costs[args.users][-1] / costs[args.vs_users][-1]
            ratios.append(ratio)
            print(f"run {turn + 1}: {args.users:,} users {costs[args.users][-1]:.1f} µs, "
                  f"{args.vs_users:,} users {costs[args.vs_users][-1]:.1f} µs, "
                  f"ratio {ratio:.2f}", flush=True)  # fmt: skip
        print(f"\nmedians of {args.runs} runs ({len(big.peak_users):,} peak users, two requests "
              f"each): {statistics.median(costs[args.users]):.1f} µs against "
              f"{statistics.median(costs[args.vs_users]):.1f} µs of CPU a request, "
              f"median pair ratio {statistics.median(ratios):.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
