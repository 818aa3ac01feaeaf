"""Soak: a fixed rate of fresh OTP logins for a long time; no lost answers, flat memory.

    python -m bench.soak --minutes 10 --rate 4500 [--users 160000]

Onboards users with 30-second tokens through the CLI imports, starts otp-radiusd with one
worker pinned to core 1, and from core 0 sends OTP-only Access-Requests at ``--rate`` per
second, each user in turn with the code of the current step (so every one is a fresh,
accepted login while users × 1/30 s ≥ rate). Every 10 seconds it samples the worker's
resident memory. It prints the counts, the lost answers (none within 5 s) and the memory
samples, and exits 1 if any answer was lost or memory grew by more than 10 % after warm-up.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from bench import loadgen
from bench.server import start_server
from bench.workspace import OTP_SOURCE, SECRET, build_workspace
from otpcore.model import Algorithm
from otpcore.totp import hotp
from radiusd.nas import encode_request
from radiusd.wire import Codes

PERIOD = 30
LOST_AFTER_S = 5.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its result."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--users", type=int, default=0, help="default: enough for the rate")
    args = parser.parse_args(argv)
    users = args.users or int(args.rate * PERIOD * 1.1)
    root = Path(tempfile.mkdtemp(prefix="otpradius-soak-"))
    workspace, _ = build_workspace(root, users, workers=1, period=PERIOD)
    loadgen.pin(0)
    server = start_server(workspace, "1")
    worker = server.worker_pids()[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind((OTP_SOURCE, 0))
    sock.setblocking(False)
    target = ("127.0.0.1", workspace.port)
    outstanding: dict[int, float] = {}
    order: deque[tuple[int, float]] = deque()
    used_step = [-1] * users
    sent = answered = lost = accepted = 0
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    end = start + args.minutes * 60
    next_sample = start
    cursor = 0
    identifier = 0
    try:
        while time.perf_counter() < end or outstanding:
            now = time.perf_counter()
            while now < end and start + sent / args.rate <= now:
                step = int(datetime.now(UTC).timestamp()) // PERIOD
                if used_step[cursor] >= step or identifier in outstanding:
                    break  # every user has logged in this step, or the id is still out
                used_step[cursor] = step
                code = hotp(workspace.secrets[cursor], step, 6, Algorithm.SHA1)
                packet = encode_request(
                    SECRET.encode(),
                    user_name=workspace.login(cursor),
                    password=code,
                    identifier=identifier,
                )
                sock.sendto(packet, target)
                outstanding[identifier] = now
                order.append((identifier, now))
                identifier = (identifier + 1) % 256
                cursor = (cursor + 1) % users
                sent += 1
            readable, _, _ = select.select([sock], [], [], 0.0005)
            while readable:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                if outstanding.pop(data[1], None) is not None:
                    answered += 1
                    accepted += data[0] == Codes.ACCESS_ACCEPT
            while order and now - order[0][1] > LOST_AFTER_S:
                ident, sent_at = order.popleft()
                if outstanding.get(ident) == sent_at:
                    del outstanding[ident]
                    lost += 1
            if now >= next_sample:
                samples.append((now - start, _rss_mb(worker)))
                next_sample = now + 10
    finally:
        server.stop()
    warm = [rss for at, rss in samples if at >= 60] or [rss for _, rss in samples]
    growth = (warm[-1] - warm[0]) / warm[0] if warm and warm[0] else 0.0
    print(
        f"soak {args.minutes:g} min at {args.rate:,.0f}/s, {users:,} users: sent {sent:,}, "
        f"answered {answered:,}, accepted {accepted:,}, lost {lost}; worker RSS "
        f"{samples[0][1]:.0f} MB at start, {warm[0]:.0f} MB after 1 min, {warm[-1]:.0f} MB at "
        f"the end (max {max(rss for _, rss in samples):.0f} MB, growth {growth:+.1%})"
    )
    return 0 if lost == 0 and growth <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
