"""otp-radiusd as the benchmark runs it: pinned to a core, started, watched and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.workspace import SECRET, Workspace
from radiusd.nas import encode_request
from radiusd.wire import Codes


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
