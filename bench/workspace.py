"""The benchmark's workspace: a configuration, users and tokens onboarded through otpctl, and
the packets the generator sends."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import random
import secrets
import shutil
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

from otpcore.model import Algorithm
from otpcore.totp import hotp, time_step
from radiusd.nas import encode_request
from radiusd.wire import Codes

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


def default_hasher() -> PasswordHasher:
    """argon2id at the server's default ``[hashing]`` cost."""
    return PasswordHasher(
        time_cost=DEFAULT_HASHING["time_cost"],
        memory_cost=DEFAULT_HASHING["memory_kib"],
        parallelism=DEFAULT_HASHING["parallelism"],
        type=Type.ID,
    )


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
            # Resolved: bind() leaves out the zone of a link-local "fe80::1%eth0" written as text.
            probe.bind(socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4])
        except socket.gaierror as exc:  # a zone naming no interface, say: no port would do
            raise SystemExit(f"cannot listen on {host}: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise SystemExit(f"cannot listen on {host}: {exc.strerror}") from None
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
    # One hash for every user: the import under test reads PHC strings; it does not make them.
    phc = default_hasher().hash(PASSWORD)
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


def spread(start: int, stop: int, count: int) -> range:
    """At most ``count`` user indices evenly spread over [start, stop)."""
    step = max(1, (stop - start) // count)
    return range(start, stop, step)[:count]


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
