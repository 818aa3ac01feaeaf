"""Run real ``otp-radiusd`` processes for integration tests: one database, any number of nodes.

    site = Site.sqlite(tmp_path)              # or Site.postgresql(admin_url, tmp_path)
    alice = site.active_user()                # a user bound to a fresh 30-second token
    with site.node(mode="split") as node:     # config.toml, free port; waits for Status-Server
        reply = node.client().auth(alice.login, alice.password + alice.bound.code())
        assert reply is not None and reply.code is Codes.ACCESS_ACCEPT
    # leaving the block sends SIGTERM and asserts a clean exit

A ``Site`` is what the nodes share — the database URL and the seed key file — and sets up users
and tokens through otpcore's public API (``Admin``, ``Authenticator.activate``, the Alembic
schema). A ``Node`` is one daemon with its own configuration file, port and log; several nodes
of one site serve the same database (the multi-node layout of SPEC §8). Time is the wall clock:
tokens have a 30-second period, a fresh serial per call, and codes for "now".

Every password, OTP, seed and shared secret the harness creates or sends goes into ``LEDGER``;
each node, when stopped, asserts that its log contains none of them, and after each test
process's last test conftest.py sweeps every log it wrote again.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.workspace import free_port
from otpcore.admin import Admin
from otpcore.app import App, build_app
from otpcore.config import parse_settings
from otpcore.keys import create_key
from otpcore.model import Algorithm, Reason, Result, TokenKind, UserClass
from otpcore.passwords import HashingParams, PasswordHashing
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import upgrade
from otpcore.token_csv import TokenSpec
from otpcore.totp import hotp, time_step
from otpcore.views import TokenListing, UserView
from radiusd.nas import Reply, decode_reply, encode_request
from radiusd.packets import decode_request
from radiusd.wire import Attr, Codes, MalformedPacket
from tests.conftest import FAST_HASHING

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 25.0
DEFAULT_TIMEOUT_S = 3.0
SILENCE_S = 0.3  # how long "no answer" is waited for; replies on loopback take milliseconds
_DECISION = re.compile(r"\bauth (result=.*)$")
_PID = re.compile(r"\[\d+\]|\bpid=\d+")
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


# What must never reach a log


class SecretLedger:
    """Every secret value used by the session's tests, and every daemon log written."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.logs: list[Path] = []

    def add(self, *values: str | bytes) -> None:
        """Remember values that no log line may contain (short ones cannot be told apart)."""
        for value in values:
            text_value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if len(text_value) >= 6:
                self.values.add(text_value)

    def leaks(self, log_text: str) -> list[str]:
        """The remembered values that occur in ``log_text``; all-digit values as whole numbers.

        Process ids are left out of the search for numbers: a pid is no OTP, even when equal.
        """
        found = []
        numbers = _PID.sub("", log_text)
        for value in sorted(self.values):
            if value.isdigit():
                if re.search(rf"(?<![0-9]){value}(?![0-9])", numbers):
                    found.append(value)
            elif value in log_text:
                found.append(value)
        return found

    def sweep(self) -> dict[Path, list[str]]:
        """Every log of the session checked against every value of the session."""
        report = {}
        for path in self.logs:
            leaked = self.leaks(path.read_text(encoding="utf-8", errors="replace"))
            if leaked:
                report[path] = leaked
        return report


LEDGER = SecretLedger()


# Tokens and users


@dataclass(frozen=True)
class TestToken:
    """A TOTP token in the inventory, with the seed a test needs to compute its codes."""

    __test__ = False  # not a pytest test class

    serial: str
    secret: bytes = field(repr=False)
    period: int = 30
    digits: int = 6
    algorithm: Algorithm = Algorithm.SHA1

    def code(self, at: datetime | None = None, *, steps: int = 0) -> str:
        """The code the token shows at ``at`` (default now), ``steps`` periods later."""
        now = at or datetime.now(UTC)
        value = hotp(self.secret, time_step(now, self.period) + steps, self.digits, self.algorithm)
        LEDGER.add(value)
        return value

    def wrong_code(self) -> str:
        """A well-formed code that matches no step near now."""
        near = {self.code(steps=s) for s in range(-3, 4)}
        while True:
            value = "".join(secrets.choice("0123456789") for _ in range(self.digits))
            if value not in near:
                LEDGER.add(value)
                return value

    def oathtool_code(self, oathtool: str) -> str:
        """The current code as computed by oathtool (an independent implementation)."""
        out = subprocess.run(
            [
                oathtool,
                "--totp",
                f"--time-step-size={self.period}s",
                f"--digits={self.digits}",
                self.secret.hex(),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        LEDGER.add(out)
        return out


@dataclass(frozen=True)
class TestUser:
    """A login with its password and, once bound or issued, its token."""

    __test__ = False

    login: str
    password: str = field(repr=False)
    token: TestToken | None = None

    @property
    def bound(self) -> TestToken:
        """The user's token (the user must have one)."""
        assert self.token is not None, f"{self.login} has no token"
        return self.token


def fresh_name(prefix: str) -> str:
    """A name no other test uses (logins, serials, client names).

    Letters only: a hex name holds six digits in a row about once in seven, and logged as
    ``user=`` or ``serial=`` they equalled one of the session's codes often enough for the
    sweep of the logs for secrets to fail a run now and then.
    """
    return prefix + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def fresh_secret() -> str:
    """A random RADIUS shared secret (24 characters, so no short-secret warning)."""
    value = "s-" + secrets.token_hex(11)
    LEDGER.add(value)
    return value


# Configuration


@dataclass(frozen=True)
class ClientSpec:
    """One ``[[clients]]`` entry."""

    name: str = "local"
    address: str | Sequence[str] = "127.0.0.1/32"
    secret: str = field(default_factory=fresh_secret, repr=False)
    mode: str = "auto"
    require_message_authenticator: bool = True
    limit_proxy_state: bool = True

    def as_table(self) -> dict[str, Any]:
        """The TOML table."""
        address = self.address if isinstance(self.address, str) else list(self.address)
        return {
            "name": self.name,
            "address": address,
            "secret": self.secret,
            "mode": self.mode,
            "require_message_authenticator": self.require_message_authenticator,
            "limit_proxy_state": self.limit_proxy_state,
        }


def toml_text(data: dict[str, Any]) -> str:
    """A TOML document for the flat tables and ``[[clients]]`` of a configuration."""
    lines: list[str] = []
    for name, table in data.items():
        if name == "clients":
            continue
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    for client in data.get("clients", []):
        lines.append("[[clients]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in client.items())
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# The shared part: database and key file


class Site:
    """One database and one seed key file, shared by every node started from it."""

    def __init__(
        self,
        directory: Path,
        database_url: str,
        *,
        hashing: dict[str, int] | None = None,
        cleanup: list[Any] | None = None,
    ) -> None:
        self.directory = directory
        self.database_url = database_url
        self.key_file = directory / "otpradius.key"
        self.hashing = dict(hashing or FAST_HASHING)
        self.nodes: list[Node] = []
        self._cleanup = cleanup or []
        directory.mkdir(parents=True, exist_ok=True)
        create_key(self.key_file)
        create_private_sqlite_file(database_url)  # as otpctl init makes it
        engine = make_engine(database_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self.app = self._build_app()

    @classmethod
    def sqlite(cls, directory: Path, **kwargs: Any) -> Site:
        """A site on a fresh SQLite file in ``directory``."""
        return cls(directory, f"sqlite:///{directory / 'otpradius.db'}", **kwargs)

    @classmethod
    def postgresql(cls, server_url: str, directory: Path, **kwargs: Any) -> Site:
        """A site on a fresh database created on the server of ``server_url`` (needs CREATEDB).

        The database is dropped again by ``close()``.
        """
        name = fresh_name("otpradius_t_")
        url = make_url(server_url)
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        site_url = url.set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            engine = create_engine(url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                engine.dispose()

        try:
            return cls(directory, site_url, cleanup=[drop], **kwargs)
        except BaseException:
            drop()
            raise

    def _build_app(self) -> App:
        data = {
            "database": {"url": self.database_url},
            "secrets": {"key_file": str(self.key_file)},
            "hashing": self.hashing,
            "logging": {"syslog": False},
        }
        settings = parse_settings(data, self.directory / "site.toml", Path.read_bytes)
        return build_app(settings, lambda: datetime.now(UTC))

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop nodes still running (asserting a clean exit), then release the database."""
        try:
            for node in self.nodes:
                if node.running:
                    node.stop()
        finally:
            for node in self.nodes:
                node.kill()
            self.app.store.dispose()
            for action in self._cleanup:
                action()

    # Inventory and users, through otpcore's public API

    def add_token(
        self,
        *,
        period: int = 30,
        digits: int = 6,
        expires: datetime | None = None,
    ) -> TestToken:
        """A new software token with a fresh serial and random seed."""
        token = TestToken(fresh_name("T"), secrets.token_bytes(20), period, digits)
        LEDGER.add(token.secret.hex(), base64.b32encode(token.secret).decode("ascii"))
        spec = TokenSpec(
            token.serial, token.secret, TokenKind.SOFTWARE, Algorithm.SHA1, digits, period, expires
        )
        self.app.admin("tests").import_tokens([spec])
        return token

    def add_user(
        self,
        *,
        password: str | None = None,
        hashing: dict[str, int] | None = None,
    ) -> TestUser:
        """A general user with no token (state ``unregistered``).

        ``hashing`` gives the argon2 parameters of this user's stored hash (verification cost
        follows the hash, whatever the node's ``[hashing]`` says).
        """
        user = TestUser(fresh_name("u"), password or "pw-" + secrets.token_urlsafe(9))
        LEDGER.add(user.password)
        admin = self.app.admin("tests")
        if hashing is not None:
            app = self.app
            slow = PasswordHashing(HashingParams(**hashing))
            admin = Admin(app.store, app.keyring, slow, app.settings.policy, app.clock, "tests")
        admin.add_user(user.login, "Test User", UserClass.GENERAL, user.password)
        return user

    def issued_user(self, token: TestToken | None = None) -> TestUser:
        """A user whose token was issued with a start date already reached (awaiting activation)."""
        user = self.add_user()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
        self.app.admin("tests").issue(user.login, yesterday)
        return TestUser(user.login, user.password, token or self.add_token())

    def active_user(self, *, hashing: dict[str, int] | None = None) -> TestUser:
        """A user bound to a fresh token, every code from now on still unused.

        The binding goes through ``Authenticator.activate`` with a clock one period behind, so
        the step it spends is the previous one.
        """
        user = self.add_user(hashing=hashing)
        token = self.add_token()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
        self.app.admin("tests").issue(user.login, yesterday)
        earlier = datetime.now(UTC) - timedelta(seconds=token.period)
        past = replace(self.app, clock=lambda: earlier)
        outcome = past.authenticator("tests").activate(
            user.login, token.serial, token.code(earlier)
        )
        assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.ACTIVATED), outcome
        return TestUser(user.login, user.password, token)

    def user(self, login: str) -> UserView:
        """A user as ``otpctl user show`` sees it."""
        return self.app.admin("tests").user(login)

    def token(self, serial: str) -> TokenListing:
        """A token as ``otpctl token list`` sees it."""
        (found,) = [t for t in self.app.admin("tests").tokens() if t.serial == serial]
        return found

    def node(self, **kwargs: Any) -> Node:
        """A node of this site (not started); see ``Node`` for the options."""
        node = Node(self, self.directory / fresh_name("node-"), **kwargs)
        self.nodes.append(node)
        return node


# One daemon


class Node:
    """One ``otp-radiusd`` process tree with its own configuration file, port and log.

    Options: ``clients`` (ClientSpec list; default one local client of ``mode``), ``workers``,
    ``policy`` and ``hashing`` (tables merged over the defaults: reject_delay 0, fast hashing),
    ``listen`` (hosts; one free port is used on all of them), ``log_level``.
    """

    def __init__(
        self,
        site: Site,
        directory: Path,
        *,
        clients: Sequence[ClientSpec] | None = None,
        mode: str = "auto",
        workers: int = 1,
        policy: dict[str, Any] | None = None,
        hashing: dict[str, int] | None = None,
        listen: Sequence[str] = ("127.0.0.1",),
        log_level: str = "info",
    ) -> None:
        self.site = site
        self.directory = directory
        directory.mkdir(parents=True)
        self.clients = list(clients) if clients is not None else [ClientSpec(mode=mode)]
        self.workers = workers
        self.policy = {"reject_delay": 0, **(policy or {})}
        self.hashing = {**site.hashing, **(hashing or {})}
        self.hosts = tuple(listen)
        self.log_level = log_level
        self.port = free_port(self.hosts)
        self.config_path = directory / "config.toml"
        self.log_path = directory / "otp-radiusd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.write_config()

    @property
    def client_spec(self) -> ClientSpec:
        """The first configured client (the default one)."""
        return self.clients[0]

    @property
    def address(self) -> tuple[str, int]:
        """The first listening address."""
        return (self.hosts[0], self.port)

    @property
    def running(self) -> bool:
        """True while the supervisor process runs."""
        return self.process is not None and self.process.poll() is None

    def write_config(self) -> None:
        """(Re)write config.toml from the node's current settings."""
        data = {
            "server": {
                "listen": [
                    f"[{h}]:{self.port}" if ":" in h else f"{h}:{self.port}" for h in self.hosts
                ],
                "workers": self.workers,
            },
            "database": {"url": self.site.database_url},
            "secrets": {"key_file": str(self.site.key_file)},
            "policy": self.policy,
            "hashing": self.hashing,
            "logging": {"syslog": False, "level": self.log_level},
            "clients": [client.as_table() for client in self.clients],
        }
        self.config_path.write_text(toml_text(data), encoding="utf-8")

    # Life cycle

    def start(self, timeout: float = START_TIMEOUT_S, *, env: dict[str, str] | None = None) -> Node:
        """Start the daemon; return once it told systemd READY=1 and answers Status-Server.

        Readiness comes through a private ``NOTIFY_SOCKET``, as under systemd (Type=notify):
        Status-Server alone could be answered by the first worker while the supervisor still
        waits for the others. ``env`` adds variables; a caller that passes its own
        ``NOTIFY_SOCKET`` reads the notifications itself and only Status-Server is waited for.
        """
        assert self.process is None, "a node is started once"
        LEDGER.logs.append(self.log_path)
        inherited = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), inherited.get("PYTHONPATH")]))
        env = {**inherited, "PYTHONPATH": path, **(env or {})}
        with contextlib.ExitStack() as stack:
            notify = None
            if "NOTIFY_SOCKET" not in env:
                notify = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
                name = fresh_name("@otpradius-test-")
                notify.bind("\0" + name[1:])
                env["NOTIFY_SOCKET"] = name
            self._spawn(env)
            deadline = time.monotonic() + timeout
            if notify is not None:
                self._await_notification(notify, "READY=1", deadline)
            with self.client(timeout=0.2) as probe:
                while time.monotonic() < deadline:
                    self._assert_running()
                    if probe.status() is not None:
                        return self
        self.kill()
        raise AssertionError(f"otp-radiusd did not answer within {timeout} s:\n{self.log_text()}")

    def _spawn(self, env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            # python -m radiusd.main is what the otp-radiusd console script runs; this way the
            # daemon is always the code of this checkout, whatever is installed.
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "radiusd.main",
                    "--config",
                    str(self.config_path),
                    "--stderr",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
            )

    def _await_notification(self, notify: socket.socket, line: str, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            self._assert_running()
            notify.settimeout(min(left, 0.2))
            try:
                message = notify.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                continue
            if line in message.splitlines():
                return
        self.kill()
        raise AssertionError(f"otp-radiusd sent no {line} in time:\n{self.log_text()}")

    def _assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"otp-radiusd exited with {self.process.returncode}:\n{self.log_text()}"
            )

    def stop(self) -> None:
        """SIGTERM; assert the supervisor exits 0, its workers are gone and the log is clean."""
        assert self.process is not None
        workers = self.worker_pids()
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"otp-radiusd ignored SIGTERM:\n{self.log_text()}") from None
        assert status == 0, f"otp-radiusd exited with {status}:\n{self.log_text()}"
        left = [pid for pid in workers if _alive(pid)]
        assert not left, f"workers {left} outlived the supervisor"
        leaked = LEDGER.leaks(self.log_text())
        assert not leaked, f"secrets in the log of {self.directory.name}: {leaked}"

    def kill(self) -> None:
        """SIGKILL the node's whole process group (only for cleanup after a failure)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def reload(self) -> None:
        """Rewrite the configuration and send SIGHUP to the supervisor."""
        self.write_config()
        self.hangup()

    def hangup(self) -> None:
        """Send SIGHUP to the supervisor (reload ``[[clients]]`` from the file as it is)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def __enter__(self) -> Node:
        return self.start() if self.process is None else self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.stop()
        else:
            self.kill()

    # What a test looks at

    def worker_pids(self) -> list[int]:
        """The pids of the supervisor's children (the workers)."""
        assert self.process is not None
        return children(self.process.pid)

    def log_text(self) -> str:
        """Everything the daemon logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def mark(self) -> None:
        """Make ``new_log()`` and ``decisions(new=True)`` start from here."""
        self._log_offset = self.log_path.stat().st_size

    def new_log(self) -> str:
        """The log written since ``mark()``."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", errors="replace")

    def decisions(self, *, new: bool = False) -> list[dict[str, str]]:
        """The ``auth result=… reason=…`` lines as ordered dicts of their keys."""
        source = self.new_log() if new else self.log_text()
        return [
            parse_pairs(m.group(1)) for line in source.splitlines() if (m := _DECISION.search(line))
        ]

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> bool:
        """Wait until ``needle`` appears in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def client(
        self,
        spec: ClientSpec | None = None,
        *,
        host: str | None = None,
        source: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> RadiusClient:
        """A UDP client for this node, with the secret of ``spec`` (default the first client)."""
        spec = spec or self.client_spec
        server = host or self.hosts[0]
        source = source or source_address(spec, _family(server))
        return RadiusClient(
            (server, self.port), spec.secret.encode(), source=source, timeout=timeout
        )


def source_address(spec: ClientSpec, family: socket.AddressFamily) -> str:
    """A loopback address inside the client's networks to send from (127.0.0.1/::1 if inside)."""
    version = 6 if family == socket.AF_INET6 else 4
    addresses = [spec.address] if isinstance(spec.address, str) else list(spec.address)
    for item in addresses:
        network = ipaddress.ip_network(item, strict=False)
        if network.version != version:
            continue
        loopback = ipaddress.ip_address("::1" if version == 6 else "127.0.0.1")
        return str(loopback if loopback in network else network.network_address)
    raise ValueError(f"client {spec.name} has no IPv{version} address")


def parse_pairs(line: str) -> dict[str, str]:
    """``a=1 b="x y"`` to {"a": "1", "b": "x y"}, in order."""
    pairs = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"'):
            # Printable text of any script stands as it is; the escapes are Python's.
            value = value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        pairs[key] = value
    return pairs


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` not yet reaped (from /proc/PID/task/*/children).

    A killed worker stays in the list until the supervisor reaps it, which is after its last
    thread has exited and so after its sockets are closed. (Its main thread alone can show
    as a zombie while other threads still hold the socket open.)
    """
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return sorted(set(found))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# The client side


def answered(reply: Reply | None, code: Codes) -> Reply:
    """The reply, which must have come back, and with ``code``."""
    assert reply is not None, f"no answer where {code.name} was expected"
    assert reply.code is code
    return reply


@dataclass
class Exchange:
    """One datagram sent, and what came back (None: no answer in time)."""

    request: bytes
    reply: Reply | None
    reply_bytes: bytes | None
    elapsed: float


class RadiusClient:
    """A small RADIUS client on its own UDP socket, checking every reply it receives.

    Every reply must carry a valid Message-Authenticator as its first attribute, a valid
    Response Authenticator, and the request's Proxy-State attributes in order (SPEC §4).
    """

    def __init__(
        self,
        server: tuple[str, int],
        secret: bytes,
        *,
        source: str = "127.0.0.1",
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.server = server
        self.secret = secret
        self.timeout = timeout
        family = _family(server[0])
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        # Resolved, so that a link-local source keeps its zone (bind ignores "%eth0" in text).
        self.sock.bind(socket.getaddrinfo(source, 0, family, socket.SOCK_DGRAM)[0][4])

    def __enter__(self) -> RadiusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send one datagram."""
        self.sock.sendto(data, self.server)

    def receive(self, request: bytes, timeout: float | None = None) -> bytes | None:
        """The next datagram with the request's identifier, or None after ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            if len(data) >= 20 and len(request) >= 2 and data[1] == request[1]:
                return data
        return None

    def exchange(self, data: bytes, timeout: float | None = None) -> Exchange:
        """Send ``data`` and wait for its reply."""
        started = time.monotonic()
        self.send(data)
        raw = self.receive(data, timeout)
        elapsed = time.monotonic() - started
        return Exchange(data, self.check(data, raw) if raw else None, raw, elapsed)

    def check(self, request: bytes, raw: bytes) -> Reply:
        """Decode a reply and assert what SPEC §4 requires of every reply."""
        reply = decode_reply(raw, self.secret, request[4:20])
        assert reply.attribute_types[:1] == (Attr.MESSAGE_AUTHENTICATOR,), reply
        assert reply.message_authenticator_valid, reply
        assert reply.response_authenticator_valid, reply
        try:
            sent = decode_request(request, self.secret).proxy_states
        except MalformedPacket as exc:
            raise AssertionError(f"a malformed request was answered: {exc}") from None
        assert reply.proxy_states == sent, (reply.proxy_states, sent)
        return reply

    def build(self, *, sensitive: bool = True, **fields: Any) -> bytes:
        """``encode_request(secret, **fields)``, recording the password as a secret.

        Pass ``sensitive=False`` for a User-Password that is no secret (a serial number).
        """
        if sensitive and fields.get("password") is not None:
            LEDGER.add(fields["password"])
        return encode_request(self.secret, **fields)

    def request(
        self, *, sensitive: bool = True, timeout: float | None = None, **fields: Any
    ) -> Exchange:
        """Build a request (see ``build``) and exchange it."""
        return self.exchange(self.build(sensitive=sensitive, **fields), timeout)

    def auth(
        self,
        user: str,
        password: str | bytes,
        *,
        state: bytes | None = None,
        sensitive: bool = True,
        timeout: float | None = None,
        **fields: Any,
    ) -> Reply | None:
        """An Access-Request; the decoded reply or None."""
        return self.request(
            user_name=user,
            password=password,
            state=state,
            sensitive=sensitive,
            timeout=timeout,
            **fields,
        ).reply

    def status(self, timeout: float | None = None) -> Reply | None:
        """A Status-Server; the decoded reply (Access-Accept) or None."""
        return self.request(code=Codes.STATUS_SERVER, timeout=timeout).reply

    def silent(self, data: bytes, timeout: float = SILENCE_S) -> bool:
        """Send ``data`` and tell whether no answer came within ``timeout``."""
        self.send(data)
        return self.receive(data, timeout) is None
