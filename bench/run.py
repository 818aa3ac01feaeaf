"""The RADIUS-path benchmark: otp-radiusd beside FreeRADIUS on the same core, same generator.

    python -m bench [--users 10000] [--quick] [--skip-freeradius]

Builds a workspace under a temporary folder, onboards users with bound tokens through
``otpctl token import`` and ``otpctl user import``, starts ``otp-radiusd`` (and Debian's
FreeRADIUS with PAP from a users file), pins each server to core 1 and the generator to
core 0, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import loadgen
from bench.freeradius import FreeRadius
from bench.server import Server, start_server
from bench.workspace import (
    LATENCY_USERS,
    LOADGEN_CPU,
    LOGIN_TURNS,
    OTP_SOURCE,
    PASSWORD,
    PEAK_USERS,
    SECRET,
    SERVER_CPU,
    SPLIT_SOURCE,
    Workspace,
    build_workspace,
    default_hasher,
    disk_note,
    free_port,
    otp_packets,
    spread,
    status_packets,
    temporary_workspace,
)
from radiusd.nas import encode_request
from radiusd.wire import Codes


def argon2_bound(seconds: float, threads: int) -> tuple[float, float]:
    """argon2id verifies per second at the default cost on ``threads`` threads, and the time."""
    from concurrent.futures import ThreadPoolExecutor

    hasher = default_hasher()
    phc = hasher.hash(PASSWORD)
    deadline = time.perf_counter() + seconds

    def spin() -> int:
        count = 0
        while time.perf_counter() < deadline:
            hasher.verify(phc, PASSWORD)
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(lambda _: spin(), range(threads)))
    elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, elapsed


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    value: str
    note: str = ""


def measure_server(
    workspace: Workspace, server: Server, packets: list[bytes], source: str, **kwargs: object
) -> tuple[loadgen.RunResult, float]:
    """Send ``packets`` to the server; the generator's result and the server's CPU seconds."""
    before = server.cpu_seconds()
    result = loadgen.run(packets, ("127.0.0.1", workspace.port), source=source, **kwargs)  # type: ignore[arg-type]
    return result, server.cpu_seconds() - before


def benchmark(args: argparse.Namespace) -> list[Row]:
    """Run every phase and return the table rows."""
    loadgen.pin(LOADGEN_CPU)
    rows: list[Row] = []
    with temporary_workspace(args.keep) as root:
        workspace, imports = build_workspace(root, args.users, workers=1)
        rows.append(Row("import: tokens (CSV)", f"{imports['tokens']:.1f} s", f"{args.users} rows"))
        rows.append(
            Row("import: users (password_hash)", f"{imports['users']:.1f} s", f"{args.users} rows")
        )
        server = start_server(workspace, str(SERVER_CPU))
        rows.append(
            Row("start-up", f"{server.startup:.2f} s", "exec to first Status-Server answer")
        )
        try:
            # The same number of requests whatever the population, spread across it, so that a
            # million users and ten thousand are compared on equal work.
            half = args.users // 2
            peak_users = spread(0, half, PEAK_USERS)
            result, cpu = measure_server(
                workspace,
                server,
                otp_packets(workspace, peak_users, split=False),
                OTP_SOURCE,
                window=args.window,
            )
            accepts = result.codes.get(Codes.ACCESS_ACCEPT, 0)
            otp_rate = accepts / result.wall if result.wall else 0.0
            rows.append(
                Row(
                    "otp accepts/s (1 worker, 1 core)",
                    f"{otp_rate:,.0f}",
                    f"{accepts}/{result.sent} accepted, lost {result.lost}, "
                    f"generator cpu {result.cpu / result.wall:.0%} of its core",
                )
            )
            rows.append(
                Row("server CPU per otp request", f"{cpu / max(1, result.answered) * 1e6:,.0f} µs")
            )
            status, _ = measure_server(
                workspace,
                server,
                status_packets(args.status_count),
                "127.0.0.1",
                window=args.window,
            )
            rows.append(Row("status answers/s", f"{status.rate:,.0f}", f"lost {status.lost}"))
            # The last users are kept for the login phase: a code spent here is a replay there.
            latency_users = spread(half, args.users - login_users(args), LATENCY_USERS)
            target_rate = max(100.0, otp_rate / 2)
            lat, lat_cpu = measure_server(
                workspace,
                server,
                otp_packets(workspace, latency_users, split=False),
                OTP_SOURCE,
                rate=target_rate,
            )
            # Half the peak rate is not half the work: commits then hold a few requests each,
            # so the server's share of its core says how much room the tail had.
            rows.append(
                Row(
                    f"otp latency at {target_rate:,.0f}/s (p50 / p99)",
                    f"{lat.percentile(50):.2f} / {lat.percentile(99):.2f} ms",
                    f"lost {lat.lost} of {lat.sent}, "
                    f"accepted {lat.codes.get(Codes.ACCESS_ACCEPT, 0)}, "
                    f"server busy {lat_cpu / lat.wall if lat.wall else 0.0:.0%} of its core "
                    f"({lat_cpu / max(1, lat.answered) * 1e6:,.0f} µs a request)",
                )
            )
            rss = server.worker_rss_mb()
            rows.append(Row("peak RSS per worker", ", ".join(f"{size:.0f} MB" for size in rss)))
        finally:
            server.stop()
        rows.extend(login_phase(workspace, args))
        if not args.skip_freeradius:
            rows.extend(freeradius_phase(workspace, args, otp_rate, status.rate))
    return rows


def login_users(args: argparse.Namespace) -> int:
    """How many users, the last ones, log in during the login phase."""
    return int(min(args.users // 10, args.login_count))


def login_phase(workspace: Workspace, args: argparse.Namespace) -> list[Row]:
    """Split-mode logins at the default argon2id cost, 2 workers on 2 cores, vs the hash bound.

    The bound and the logins are measured in turns, a slice of each at a time, so that both
    see the same state of a shared host: measured once each, a few seconds apart, the bound
    alone moved by a fifth from one run to the next.
    """
    rewrite = workspace.config.read_text().replace("workers = 1", "workers = 2")
    workspace.config.write_text(rewrite)
    server = start_server(workspace, "0,1", workers=2)
    first = workspace.users - login_users(args)
    turns = [range(first + turn, workspace.users, LOGIN_TURNS) for turn in range(LOGIN_TURNS)]
    verifies = bound_seconds = 0.0
    accepts = sent = 0
    login_seconds = 0.0
    ratios: list[float] = []
    try:
        for users in turns:
            # The bound runs on both cores, like the server (idle meanwhile): the generator's
            # pin is lifted for it.
            os.sched_setaffinity(0, {0, 1})
            rate, seconds = argon2_bound(args.bound_seconds, 2)
            verifies += rate * seconds
            bound_seconds += seconds
            loadgen.pin(LOADGEN_CPU)
            # One login per user, with this step's code.
            result, _ = measure_server(
                workspace,
                server,
                otp_packets(workspace, users, split=True, offsets=(0,)),
                SPLIT_SOURCE,
                window=64,
                timeout=10.0,
            )
            turn_accepts = result.codes.get(Codes.ACCESS_ACCEPT, 0)
            accepts += turn_accepts
            sent += result.sent
            login_seconds += result.wall
            if result.wall and rate:
                ratios.append(turn_accepts / result.wall / rate)
    finally:
        server.stop()
    bound = verifies / bound_seconds if bound_seconds else 0.0
    logins = accepts / login_seconds if login_seconds else 0.0
    turn_range = f"turns {min(ratios):.2f} to {max(ratios):.2f}" if ratios else "no turns"
    return [
        Row(
            "argon2id verifies/s (default cost, 2 threads)",
            f"{bound:,.1f}",
            f"the hash bound, in {len(turns)} turns with the logins",
        ),
        Row(
            "login (split) accepts/s, 2 workers",
            f"{logins:,.1f}",
            f"{logins / bound if bound else 0.0:.2f} × hash bound ({turn_range}); "
            f"{accepts}/{sent} accepted",
        ),
    ]


def freeradius_phase(
    workspace: Workspace, args: argparse.Namespace, otp_rate: float, status_rate: float
) -> list[Row]:
    """FreeRADIUS PAP on the same core with the same generator, and the ratios."""
    port = free_port()
    users = [(workspace.login(i), PASSWORD) for i in range(min(workspace.users, 10000))]
    with FreeRadius(workspace.root / "freeradius", port, SECRET, users, cpus=str(SERVER_CPU)):
        packets = [
            encode_request(
                SECRET.encode(),
                user_name=login,
                password=password,
                identifier=(number // 128) % 256,
            )
            for number, (login, password) in enumerate(users * max(1, 20000 // len(users)))
        ]
        result = loadgen.run(packets, ("127.0.0.1", port), window=args.window)
    accepts = result.codes.get(Codes.ACCESS_ACCEPT, 0)
    rate = accepts / result.wall if result.wall else 0.0
    return [
        Row(
            "FreeRADIUS PAP answers/s (1 core)",
            f"{rate:,.0f}",
            f"{accepts}/{result.sent} accepted, generator cpu {result.cpu / result.wall:.0%}",
        ),
        Row("ratio otp / FreeRADIUS", f"{otp_rate / rate:.2f}" if rate else "n/a", "target ≥ 0.12"),
        Row(
            "ratio status / FreeRADIUS",
            f"{status_rate / rate:.2f}" if rate else "n/a",
            "target ≥ 0.30",
        ),
    ]


def render(rows: Sequence[Row], args: argparse.Namespace) -> str:
    """The markdown table, with what was run and where."""
    head = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "unknown"
    )
    lines = [
        f"otpradius bench — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {head}, "
        f"{os.cpu_count()} cores, {args.users:,} users",
        disk_note(Path(tempfile.gettempdir())),
        "",
        "| figure | value | note |",
        "| --- | --- | --- |",
        *(f"| {row.figure} | {row.value} | {row.note} |" for row in rows),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="small smoke run, no FreeRADIUS")
    parser.add_argument("--skip-freeradius", action="store_true")
    parser.add_argument("--window", type=int, default=256, help="requests in flight (peak)")
    parser.add_argument("--status-count", type=int, default=50000)
    parser.add_argument("--login-count", type=int, default=1000, help="users logging in once each")
    parser.add_argument(
        "--bound-seconds", type=float, default=1.5, help="argon2id bound per login turn"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workspace folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.users = min(args.users, 400)
        args.status_count = 2000
        args.login_count = 20
        args.bound_seconds = 0.2
        args.skip_freeradius = True
    print(render(benchmark(args), args))
    return 0
