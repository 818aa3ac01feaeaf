"""Debian's FreeRADIUS 3 as a PAP reference server: a minimal configuration in a folder."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

FREERADIUS = "/usr/sbin/freeradius"

_CONFIG = """prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
datarootdir = /usr/share
confdir = {root}
raddbdir = {root}
logdir = {root}/log
run_dir = {root}/run
libdir = /usr/lib/freeradius
pidfile = {root}/run/freeradius.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 1048576
hostname_lookups = no
log {{
    destination = stderr
    auth = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = 4
    max_servers = 16
    min_spare_servers = 2
    max_spare_servers = 8
    max_requests_per_server = 0
    max_queue_size = 65536
}}
client loopback {{
    ipaddr = 127.0.0.0/8
    secret = {secret}
    require_message_authenticator = no
}}
modules {{
    pap {{
        normalise = yes
    }}
    files {{
        filename = {root}/users
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
}}
"""


class FreeRadius:
    """A FreeRADIUS process answering PAP for the given users, pinned to ``cpus``."""

    def __init__(
        self, root: Path, port: int, secret: str, users: Sequence[tuple[str, str]], cpus: str
    ) -> None:
        self.root = root
        self.port = port
        self.secret = secret
        self.users = users
        self.cpus = cpus
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FreeRadius:
        if shutil.which(FREERADIUS) is None and not Path(FREERADIUS).exists():
            raise SystemExit("FreeRADIUS is not installed (Debian package freeradius)")
        for folder in ("log", "run"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "radiusd.conf").write_text(
            _CONFIG.format(root=self.root, port=self.port, secret=self.secret), encoding="utf-8"
        )
        with (self.root / "users").open("w", encoding="utf-8") as out:
            for login, password in self.users:
                out.write(f'{login} Cleartext-Password := "{password}"\n')
        self.process = subprocess.Popen(
            ["taskset", "-c", self.cpus, FREERADIUS, "-f", "-d", str(self.root)],
            stdout=(self.root / "log" / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import socket

        from radiusd.nas import encode_request
        from radiusd.wire import Codes

        deadline = time.monotonic() + 20
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    break
                login, password = self.users[0]
                request = encode_request(self.secret.encode(), user_name=login, password=password)
                sock.sendto(request, ("127.0.0.1", self.port))
                try:
                    if sock.recv(4096)[0] == Codes.ACCESS_ACCEPT:
                        return
                except TimeoutError:
                    continue
        log = (self.root / "log" / "stdout.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"FreeRADIUS did not start:\n{log}")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
