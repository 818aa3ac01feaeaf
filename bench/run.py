"""The RADIUS-path benchmark: otp-radiusd beside FreeRADIUS on the same core, same generator.

    python -m bench [--users 10000] [--quick] [--skip-freeradius]

Builds a workspace under a temporary folder, onboards users with bound tokens through
``otpctl token import`` and ``otpctl user import``, starts ``otp-radiusd`` (and Debian's
FreeRADIUS with PAP from a users file), pins each server to core 1 and the generator to
core 0, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher, Type

from bench import loadgen
from bench.freeradius import FreeRadius
from otpcore.model import Algorithm
from otpcore.totp import hotp, time_step
from radiusd.packets import Codes, encode_request

SECRET = "bench-shared-secret-0123456789"
PASSWORD = "Bench-Passw0rd!"
PERIOD = 60
SERVER_CPU = 1
LOADGEN_CPU = 0
OTP_SOURCE = "127.0.0.2"  # client in mode "otp"
SPLIT_SOURCE = "127.0.0.3"  # client in mode "split"
PEAK_USERS = 5000  # two requests each (this step's code, then the next step's)
LATENCY_USERS = 4000
LOGIN_TURNS = 5  # the login phase alternates this many slices of bound and logins
DEFAULT_HASHING = {"time_cost": 2, "memory_kib": 19456, "parallelism": 1}


def free_port(hosts: Sequence[str] = ("127.0.0.1",)) -> int:
    """A UDP port free on every host, outside the range the kernel hands out to clients.

    A workspace keeps its port while its server is stopped and started again run after run,
    and every phase opens 128 client sockets meanwhile: from the ephemeral range, one of them
    could take the server's port in the gap, and the next start would fail. Probed without
    SO_REUSEPORT, so a port another (SO_REUSEPORT) daemon holds is refused, not shared.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        if all(_port_free(host, port) for host in hosts):
            return port
    raise SystemExit("no free UDP port below the ephemeral range")


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class Workspace:
    """A folder with a configuration, a key, a database and the seeds the bench knows."""

    root: Path
    port: int
    users: int
    secrets: list[bytes]

    @property
    def config(self) -> Path:
        """The configuration file."""
        return self.root / "config.toml"

    def login(self, index: int) -> str:
        """The login of user ``index``."""
        return f"u{index:07d}"

    def serial(self, index: int) -> str:
        """The serial of user ``index``'s token."""
        return f"T{index:07d}"


def write_config(root: Path, port: int, workers: int) -> None:
    """A configuration with an otp-mode and a split-mode client on loopback addresses."""
    hashing = "\n".join(f"{key} = {value}" for key, value in DEFAULT_HASHING.items())
    (root / "config.toml").write_text(
        f"""[server]
listen = ["127.0.0.1:{port}"]
workers = {workers}

[database]
url = "sqlite:///otpradius.db"

[secrets]
key_file = "otpradius.key"

[policy]
reject_delay = 0

[hashing]
{hashing}

[logging]
syslog = false
level = "warning"

[[clients]]
name = "bench-otp"
address = "{OTP_SOURCE}/32"
secret = "{SECRET}"
mode = "otp"

[[clients]]
name = "bench-split"
address = "{SPLIT_SOURCE}/32"
secret = "{SECRET}"
mode = "split"

[[clients]]
name = "bench-local"
address = "127.0.0.1/32"
secret = "{SECRET}"
mode = "auto"
""",
        encoding="utf-8",
    )


def otpctl(workspace_root: Path, *args: str, stdin: str | None = None) -> float:
    """Run an otpctl command against the workspace; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        ["otpctl", "--config", str(workspace_root / "config.toml"), *args],
        input=stdin,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "LANG": "C"},
    )
    return time.perf_counter() - started


def build_workspace(
    root: Path, users: int, workers: int, period: int = PERIOD
) -> tuple[Workspace, dict[str, float]]:
    """Initialise a workspace and onboard ``users`` users with bound tokens via the CLI."""
    port = free_port()
    write_config(root, port, workers)
    otpctl(root, "init")
    seeds = [secrets.token_bytes(20) for _ in range(users)]
    workspace = Workspace(root, port, users, seeds)
    tokens_csv = root / "tokens.csv"
    with tokens_csv.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["serial", "secret", "algorithm", "digits", "period", "expires"])
        for index, seed in enumerate(seeds):
            writer.writerow([workspace.serial(index), seed.hex(), "SHA1", 6, period, "2036-01-01"])
    hasher = PasswordHasher(
        time_cost=DEFAULT_HASHING["time_cost"],
        memory_cost=DEFAULT_HASHING["memory_kib"],
        parallelism=DEFAULT_HASHING["parallelism"],
        type=Type.ID,
    )
    # One hash for every user: the import under test reads PHC strings; it does not make them.
    phc = hasher.hash(PASSWORD)
    users_csv = root / "users.csv"
    with users_csv.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["login", "name", "class", "password_hash", "start", "serial"])
        for index in range(users):
            writer.writerow(
                [
                    workspace.login(index),
                    f"User {index}",
                    "general",
                    phc,
                    "",
                    workspace.serial(index),
                ]
            )
    timings = {
        "tokens": otpctl(root, "token", "import", str(tokens_csv)),
        "users": otpctl(root, "user", "import", str(users_csv)),
    }
    return workspace, timings


def otp_packets(
    workspace: Workspace, indices: Sequence[int], *, split: bool, offsets: Sequence[int] = (0, 1)
) -> list[bytes]:
    """Access-Requests with codes for the current step plus each offset, offset by offset.

    The users come in a shuffled order (the same every run). In key order, neighbours would
    share the database pages of their rows, and a batch of requests would write a few pages
    instead of one each: a locality no login storm has, which only a small population gets.
    """
    step = time_step(datetime.now(UTC), PERIOD)
    packets: list[bytes] = []
    sockets = 128
    order = list(indices)
    random.Random(len(order)).shuffle(order)
    for offset in offsets:
        for index in order:
            code = hotp(workspace.secrets[index], step + offset, 6, Algorithm.SHA1)
            password = PASSWORD + code if split else code
            number = len(packets)
            packets.append(
                encode_request(
                    SECRET.encode(),
                    user_name=workspace.login(index),
                    password=password,
                    identifier=(number // sockets) % 256,
                )
            )
    return packets


def status_packets(count: int) -> list[bytes]:
    """Status-Server requests (Message-Authenticator included, as RFC 5997 demands)."""
    sockets = 128
    return [
        encode_request(
            SECRET.encode(), code=Codes.STATUS_SERVER, identifier=(number // sockets) % 256
        )
        for number in range(count)
    ]


@dataclass
class Server:
    """A running otp-radiusd."""

    process: subprocess.Popen[bytes]
    startup: float

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the supervisor)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def cpu_seconds(self) -> float:
        """User + system CPU of the supervisor and its workers so far."""
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in [self.process.pid, *self.worker_pids()]:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def worker_rss_mb(self) -> list[float]:
        """Peak resident memory of each worker, in MB."""
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_for_status(port: int, timeout: float, source: str = "127.0.0.1") -> bool:
    """True once a Status-Server on ``port`` is answered."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(0.05)
        while time.monotonic() < deadline:
            sock.sendto(
                encode_request(SECRET.encode(), code=Codes.STATUS_SERVER), ("127.0.0.1", port)
            )
            with contextlib.suppress(TimeoutError):
                if sock.recv(4096)[0] == Codes.ACCESS_ACCEPT:
                    return True
    return False


def bound_sockets(port: int) -> int:
    """How many UDP sockets are bound to ``port`` on IPv4 (one per worker, SO_REUSEPORT)."""
    suffix = f":{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(suffix))


def wait_for_workers(port: int, workers: int, timeout: float) -> None:
    """Wait until every worker has bound its socket.

    The first answer comes from whichever worker is up first; until the others bind, the
    kernel hands it every datagram, and a phase that starts then measures one worker.
    """
    deadline = time.monotonic() + timeout
    while bound_sockets(port) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {bound_sockets(port)} of {workers} workers started")
        time.sleep(0.01)


def start_server(workspace: Workspace, cpus: str, workers: int = 1) -> Server:
    """Start otp-radiusd pinned to ``cpus``; start-up time is until Status-Server answers.

    ``workers`` is what the configuration says; the server is returned once all of them listen.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", cpus, "otp-radiusd", "--config", str(workspace.config), "--stderr"],
        stderr=(workspace.root / "radiusd.log").open("ab"),
    )
    if not wait_for_status(workspace.port, 30):
        process.kill()
        raise SystemExit("otp-radiusd did not start; see " + str(workspace.root / "radiusd.log"))
    startup = time.perf_counter() - started
    wait_for_workers(workspace.port, workers, 30)
    return Server(process, startup)


def argon2_bound(seconds: float, threads: int) -> tuple[float, float]:
    """argon2id verifies per second at the default cost on ``threads`` threads, and the time."""
    from concurrent.futures import ThreadPoolExecutor

    hasher = PasswordHasher(
        time_cost=DEFAULT_HASHING["time_cost"],
        memory_cost=DEFAULT_HASHING["memory_kib"],
        parallelism=DEFAULT_HASHING["parallelism"],
        type=Type.ID,
    )
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


def spread(start: int, stop: int, count: int) -> range:
    """At most ``count`` user indices evenly spread over [start, stop)."""
    step = max(1, (stop - start) // count)
    return range(start, stop, step)[:count]


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


@contextlib.contextmanager
def temporary_workspace(keep: bool) -> Iterator[Path]:
    """A fresh folder under the system's temporary folder, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix="otpradius-bench-"))
    try:
        yield root
    finally:
        if keep:
            print(f"workspace kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (``ext4``, ``tmpfs``), from the mount table."""
    resolved, best, kind = str(path.resolve()), "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            point = fields[1].replace("\\040", " ")
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def disk_note(folder: Path) -> str:
    """Where the databases live, with a warning when an fsync there costs nothing."""
    kind = filesystem(folder)
    note = f"databases on {kind} ({folder})"
    if kind in ("tmpfs", "ramfs"):
        # Commits would then be durable in name only, and every figure flattered.
        note += " — in memory, where fsync costs nothing: set TMPDIR to a folder on disk"
    return note


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
