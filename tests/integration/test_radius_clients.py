"""FreeRADIUS's own tools against otp-radiusd: radclient, radtest, and a FreeRADIUS proxy.

Real UDP on loopback. The tools come from Debian's ``freeradius-utils`` and ``freeradius``; the
tests skip without them, and fail instead under ``OTPRADIUS_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_command, require_service
from tests.integration.daemon import LEDGER, ClientSpec, Node, Site, free_port, fresh_secret

pytestmark = pytest.mark.service

_RECEIVED = re.compile(r"^Received (Access-\w+) Id \d+ from")
_ATTRIBUTE = re.compile(r"^\s+([\w-]+) = (.*)$")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


@dataclass
class ToolReply:
    """What radclient printed about the reply it received."""

    code: str | None
    attributes: list[tuple[str, str]]
    output: str

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.attributes if key == name]


def parse_radclient(output: str) -> ToolReply:
    """The code and attributes of the reply in ``radclient -x`` output."""
    code = None
    attributes: list[tuple[str, str]] = []
    for line in output.splitlines():
        if match := _RECEIVED.match(line):
            code, attributes = match.group(1), []
        elif code is not None and (pair := _ATTRIBUTE.match(line)):
            attributes.append((pair.group(1), pair.group(2).strip('"')))
    return ToolReply(code, attributes, output)


def radclient(address: tuple[str, int], secret: str, attributes: dict[str, str]) -> ToolReply:
    """One Access-Request sent by radclient (a single try), Message-Authenticator included."""
    tool = require_command("radclient")
    lines = [f"{name} = {value}" for name, value in attributes.items()]
    lines.append("Message-Authenticator = 0x00")  # radclient fills in the real value
    done = subprocess.run(
        [tool, "-x", "-r", "1", "-t", "3", f"{address[0]}:{address[1]}", "auth", secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return parse_radclient(done.stdout + done.stderr)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_radtest_split_login_is_accepted(site: Site) -> None:
    radtest = require_command("radtest")
    oathtool = require_command("oathtool")
    alice = site.active_user()
    with site.node(mode="split") as node:
        otp = alice.bound.oathtool_code(oathtool)
        assert otp == alice.bound.code() or otp == alice.bound.code(steps=-1)
        done = subprocess.run(
            [
                radtest,
                alice.login,
                alice.password + otp,
                f"127.0.0.1:{node.port}",
                "0",
                node.client_spec.secret,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        reply = parse_radclient(done.stdout + done.stderr)
        assert reply.code == "Access-Accept", reply.output
        assert [d["reason"] for d in node.decisions()] == ["ok"]


def test_radclient_code_typed_full_width_is_accepted(site: Site) -> None:
    # UTF-8 on the wire, as a VPN client sends what a Japanese keyboard typed with its IME on.
    alice = site.active_user()
    with site.node(mode="split") as node:
        typed = "".join(chr(ord(digit) + 0xFEE0) for digit in alice.bound.code())
        login = {"User-Name": quoted(alice.login), "User-Password": quoted(alice.password + typed)}
        accepted = radclient(node.address, node.client_spec.secret, login)
        assert accepted.code == "Access-Accept", accepted.output
        assert [d["reason"] for d in node.decisions()] == ["ok"]
    assert site.token(alice.bound.serial).fail_count == 0


def test_radclient_split_accept_then_replay_and_wrong_otp_reject(site: Site) -> None:
    alice = site.active_user()
    with site.node(mode="split") as node:
        secret = node.client_spec.secret
        otp = alice.bound.code()
        login = {"User-Name": quoted(alice.login), "User-Password": quoted(alice.password + otp)}
        accepted = radclient(node.address, secret, login)
        assert accepted.code == "Access-Accept", accepted.output
        replayed = radclient(node.address, secret, login)
        assert replayed.code == "Access-Reject", replayed.output
        wrong = alice.password + alice.bound.wrong_code()
        rejected = radclient(node.address, secret, {**login, "User-Password": quoted(wrong)})
        assert rejected.code == "Access-Reject", rejected.output
        # The Reply-Message does not say which factor failed.
        assert rejected.values("Reply-Message") == ["Authentication failed."]
        assert [d["reason"] for d in node.decisions()] == ["ok", "replay", "bad_otp"]
    assert site.token(alice.bound.serial).fail_count == 2


def test_radclient_challenge_round_trip(site: Site) -> None:
    alice = site.active_user()
    with site.node(mode="challenge") as node:
        secret = node.client_spec.secret
        first = radclient(
            node.address,
            secret,
            {"User-Name": quoted(alice.login), "User-Password": quoted(alice.password)},
        )
        assert first.code == "Access-Challenge", first.output
        (state,) = first.values("State")
        assert re.fullmatch(r"0x[0-9a-f]{32,}", state), state  # >= 128 random bits
        second = radclient(
            node.address,
            secret,
            {
                "User-Name": quoted(alice.login),
                "User-Password": quoted(alice.bound.code()),
                "State": state,
            },
        )
        assert second.code == "Access-Accept", second.output
        assert [d["reason"] for d in node.decisions()] == ["otp_challenge", "ok"]


def test_radclient_accounting_sent_to_the_auth_port_is_named_in_the_log(site: Site) -> None:
    # A NAS given this server for accounting too (one host, one port): RFC 2866 packets are not
    # ours to answer, but the operator must read that the NAS sends accounting here, not that
    # it sends malformed packets.
    tool = require_command("radclient")
    alice = site.active_user()
    with site.node(mode="split") as node:
        done = subprocess.run(
            [tool, "-x", "-r", "1", "-t", "1", f"127.0.0.1:{node.port}", "acct",
             node.client_spec.secret],
            input=f"User-Name = {quoted(alice.login)}\nAcct-Status-Type = Start\n"
            "Acct-Session-Id = \"s1\"\n",
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )  # fmt: skip
        assert "Received" not in done.stdout, done.stdout
        assert node.wait_for_log("drop reason=unexpected_code:Accounting-Request "), node.log_text()
        assert "malformed" not in node.log_text()
        assert node.decisions() == []


# A FreeRADIUS server in front of otp-radiusd, proxying every request to it


FREERADIUS_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}
raddbdir = {dir}
radacctdir = {dir}
name = freeradius
confdir = {dir}
modconfdir = {dir}
run_dir = {dir}
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
proxy_requests = yes
proxy server {{
    default_fallback = no
}}
home_server otp_radiusd {{
    type = auth
    ipaddr = 127.0.0.1
    port = {home_port}
    src_ipaddr = {source}
    secret = {home_secret}
    response_window = 10
    zombie_period = 40
    revive_interval = 10
    status_check = none
}}
home_server_pool otp_pool {{
    type = fail-over
    home_server = otp_radiusd
}}
realm otp {{
    auth_pool = otp_pool
    nostrip
}}
client radclient {{
    ipaddr = 127.0.0.1
    secret = {front_secret}
}}
thread pool {{
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 4
    max_requests_per_server = 0
}}
modules {{
}}
instantiate {{
}}
policy {{
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        update control {{
            &Proxy-To-Realm := "otp"
        }}
    }}
    authenticate {{
    }}
    pre-proxy {{
        # FreeRADIUS 3.2.1 adds no Message-Authenticator of its own; otp-radiusd requires one.
        update proxy-request {{
            &Message-Authenticator := 0x00
        }}
    }}
    post-proxy {{
    }}
}}
"""


class FreeRadius:
    """``freeradius -X`` (foreground, debug output to a file) proxying to one otp-radiusd node."""

    binary = "/usr/sbin/freeradius"
    source = "127.0.0.3"  # the address otp-radiusd sees the proxy's requests come from

    def __init__(self, directory: Path, node: Node, home: ClientSpec) -> None:
        self.directory = directory
        self.port = free_port()
        self.secret = fresh_secret()
        self.node_port = node.port
        directory.mkdir(mode=0o700)
        config = FREERADIUS_CONF.format(
            dir=directory,
            home_port=node.port,
            source=self.source,
            home_secret=home.secret,
            front_secret=self.secret,
            port=self.port,
        )
        (directory / "radiusd.conf").write_text(config, encoding="utf-8")
        self.log_path = directory / "freeradius.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FreeRadius:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-X", "-f", "-d", str(self.directory), "-n", "radiusd"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "Ready to process requests" in self.log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise AssertionError(f"freeradius did not start:\n{self.log()}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def home_exchanges(self) -> list[tuple[list[str], list[str]]]:
        """Per proxied request: Proxy-States sent to otp-radiusd, and those it sent back."""
        blocks: list[tuple[str, list[str]]] = []
        for line in self.log().splitlines():
            text = re.sub(r"^\(\d+\)\s*", "", line)
            if text.startswith(("Sent ", "Received ")):
                blocks.append((text, []))
            elif blocks and (match := re.match(r"Proxy-State = (0x[0-9a-f]+)", text.strip())):
                blocks[-1][1].append(match.group(1))
        home = f"127.0.0.1:{self.node_port}"
        sent = [states for head, states in blocks if head.startswith("Sent ") and home in head]
        got = [states for head, states in blocks if head.startswith("Received ") and home in head]
        return list(zip(sent, got, strict=True))


def test_freeradius_proxy_passes_split_and_challenge_logins(site: Site, tmp_path: Path) -> None:
    require_command("radclient")
    require_service("freeradius", Path(FreeRadius.binary).is_file())
    split_user, challenge_user = site.active_user(), site.active_user()
    home = ClientSpec(name="freeradius", address=f"{FreeRadius.source}/32", mode="auto")
    with site.node(clients=[home]) as node, FreeRadius(tmp_path / "fr", node, home) as proxy:
        LEDGER.add(proxy.secret)
        front = ("127.0.0.1", proxy.port)
        # Split: password + OTP in one request.
        split = radclient(
            front,
            proxy.secret,
            {
                "User-Name": quoted(split_user.login),
                "User-Password": quoted(split_user.password + split_user.bound.code()),
                "Proxy-State": "0x6e61732d31",
            },
        )
        assert split.code == "Access-Accept", split.output
        assert split.values("Proxy-State") == ["0x6e61732d31"]
        # Challenge: the password, then the OTP with the State otp-radiusd issued.
        first = radclient(
            front,
            proxy.secret,
            {
                "User-Name": quoted(challenge_user.login),
                "User-Password": quoted(challenge_user.password),
                "Proxy-State": "0x6e61732d32",
            },
        )
        assert first.code == "Access-Challenge", first.output
        assert first.values("Proxy-State") == ["0x6e61732d32"]
        (state,) = first.values("State")
        second = radclient(
            front,
            proxy.secret,
            {
                "User-Name": quoted(challenge_user.login),
                "User-Password": quoted(challenge_user.bound.code()),
                "State": state,
                "Proxy-State": "0x6e61732d33",
            },
        )
        assert second.code == "Access-Accept", second.output
        assert second.values("Proxy-State") == ["0x6e61732d33"]
        decisions = node.decisions()
        assert [d["reason"] for d in decisions] == ["ok", "otp_challenge", "ok"]
        assert {d["client"] for d in decisions} == {"freeradius"}
        assert {d["src"] for d in decisions} == {FreeRadius.source}
        # Between the proxy and otp-radiusd: both Proxy-States (the NAS's and the proxy's own)
        # went to otp-radiusd and came back unchanged, in order.
        exchanges = proxy.home_exchanges()
        assert len(exchanges) == 3, proxy.log()
        for sent, received in exchanges:
            assert len(sent) == 2
            assert received == sent
