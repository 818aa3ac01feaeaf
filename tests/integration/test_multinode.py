"""Several nodes on one database, faults, and abuse (SPEC §4, §8; the multi-node layout).

Three ``otp-radiusd`` processes share one PostgreSQL database: no OTP is ever accepted twice,
lockout counts stay exact, and a challenge begun on one node is finished on another. Then the
faults (a worker killed under load; the whole server killed right after an Accept) and abuse
(password guessing, a flood from one client).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from otpcore.attempts import AuthRequest
from otpcore.errors import RowsHeld
from otpcore.model import InputMode, Reason, Result
from radiusd.nas import decode_reply, encode_request
from radiusd.wire import Codes
from radiusd.worker import hash_threads
from tests.integration.conftest import pg_cluster_control
from tests.integration.daemon import (
    LEDGER,
    REPO_ROOT,
    ClientSpec,
    Node,
    Site,
    answered,
    fresh_secret,
)

SHORT_HASH_WAIT = Path(__file__).with_name("short_hash_wait")


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def _burst(nodes: list[Node], packets: list[tuple[int, bytes]], secret: bytes) -> list[Codes]:
    """Send every (node index, datagram) back to back from its own socket; the reply codes."""
    sockets = []
    for index, data in packets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append((sock, data, nodes[index].address))
    for sock, data, address in sockets:
        sock.sendto(data, address)
    codes: list[Codes] = []
    deadline = time.monotonic() + 5
    waiting = {sock: data for sock, data, _ in sockets}
    while waiting and time.monotonic() < deadline:
        readable, _, _ = select.select(list(waiting), [], [], 0.1)
        for sock in readable:
            raw = sock.recv(4096)
            codes.append(decode_reply(raw, secret, waiting.pop(sock)[4:20]).code)
    for sock, _, _ in sockets:
        sock.close()
    assert not waiting, f"{len(waiting)} requests were not answered"
    return codes


def _start_nodes(site: Site, count: int, spec: ClientSpec) -> list[Node]:
    return [site.node(clients=[spec], workers=1).start() for _ in range(count)]


@pytest.mark.service
def test_the_same_otp_at_three_nodes_at_once_is_accepted_exactly_once(pg_site: Site) -> None:
    spec = ClientSpec(mode="split")
    nodes = _start_nodes(pg_site, 3, spec)
    secret = spec.secret.encode()
    users = [pg_site.active_user() for _ in range(50)]
    for user in users:
        LEDGER.add(user.password)
        text = user.password + user.bound.code()
        packets = [(index, encode_request(secret, user_name=user.login, password=text))
                   for index in range(3)]  # fmt: skip
        codes = _burst(nodes, packets, secret)
        assert Counter(codes) == {Codes.ACCESS_ACCEPT: 1, Codes.ACCESS_REJECT: 2}, user.login
    for node in nodes:
        node.stop()
    decisions = [d for node in nodes for d in node.decisions()]
    assert Counter(d["reason"] for d in decisions) == {"ok": 50, "replay": 100}


@pytest.mark.service
def test_twenty_wrong_otps_across_nodes_stop_the_count_at_the_threshold(pg_site: Site) -> None:
    spec = ClientSpec(mode="split")
    nodes = _start_nodes(pg_site, 3, spec)
    secret = spec.secret.encode()
    victim = pg_site.active_user()
    packets = []
    for number in range(20):
        text = victim.password + victim.bound.wrong_code()
        packets.append((number % 3, encode_request(secret, user_name=victim.login, password=text)))
    codes = _burst(nodes, packets, secret)
    assert codes.count(Codes.ACCESS_REJECT) == 20
    token = pg_site.token(victim.bound.serial)
    assert token.fail_count == 5
    assert token.suspended
    assert pg_site.user(victim.login).suspended
    suspensions = [e for e in pg_site.app.admin().audit() if e.action == "suspend"]
    assert [e.targets for e in suspensions] == [(victim.login,)]
    for node in nodes:
        node.stop()


@pytest.mark.service
def test_a_challenge_begun_on_one_node_is_answered_on_another_and_only_once(
    pg_site: Site,
) -> None:
    spec = ClientSpec(mode="challenge")
    a, b, c = _start_nodes(pg_site, 3, spec)
    user = pg_site.active_user()
    with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        challenge = on_a.auth(user.login, user.password)
        assert challenge is not None
        assert challenge.code is Codes.ACCESS_CHALLENGE
        assert challenge.state is not None
        answer = on_b.build(user_name=user.login, password=user.bound.code(),
                            state=challenge.state)  # fmt: skip
        accept = on_b.exchange(answer).reply
        assert accept is not None
        assert accept.code is Codes.ACCESS_ACCEPT
        # The same answer, resent to another node as if B's reply had been lost: Accept again.
        resent = on_c.exchange(answer).reply
        assert resent is not None
        assert resent.code is Codes.ACCESS_ACCEPT
        again = on_c.auth(user.login, user.bound.code(steps=1), state=challenge.state)
        assert again is not None
        assert again.code is Codes.ACCESS_REJECT
    assert c.wait_for_log("reason=bad_state")
    # Logged as the same login answered again, not a second one.
    assert [d.get("resent") for d in b.decisions() if d["result"] == "accept"] == [None]
    assert [d.get("resent") for d in c.decisions() if d["result"] == "accept"] == ["1"]
    for node in (a, b, c):
        node.stop()


@pytest.mark.service
def test_an_activation_answer_resent_after_its_token_is_disabled_lets_nobody_in(
    pg_site: Site,
) -> None:
    spec = ClientSpec(mode="challenge")
    a, b = _start_nodes(pg_site, 2, spec)
    user = pg_site.issued_user()
    token = user.bound
    with a.client() as on_a, b.client() as on_b:
        asked_serial = answered(on_a.auth(user.login, user.password), Codes.ACCESS_CHALLENGE)
        serial = on_a.auth(user.login, token.serial, state=asked_serial.state, sensitive=False)
        asked_otp = answered(serial, Codes.ACCESS_CHALLENGE)
        answer = on_a.build(user_name=user.login, password=token.code(), state=asked_otp.state)
        answered(on_a.exchange(answer).reply, Codes.ACCESS_ACCEPT)
        # The token is reported stolen; A's Accept is taken as lost and the NAS asks B.
        pg_site.app.admin("tests").set_disabled(token.serial, True)
        answered(on_b.exchange(answer).reply, Codes.ACCESS_REJECT)
    for node in (a, b):
        node.stop()


@pytest.mark.service
@pytest.mark.stops_postgresql
def test_postgresql_stopped_under_load_means_no_accept_and_back_within_five_seconds(
    pg_site: Site,
) -> None:
    control = pg_cluster_control()
    spec = ClientSpec(mode="split")
    nodes = _start_nodes(pg_site, 2, spec)
    users = [pg_site.active_user() for _ in range(6)]
    subprocess.run([*control, "stop"], check=True, capture_output=True, timeout=60)
    try:
        # Requests keep coming while the database is down: not one is answered.
        for user in users[:3]:
            text = user.password + user.bound.code()
            for node in nodes:
                with node.client(timeout=0.5) as nas:
                    assert nas.auth(user.login, text) is None
                    assert nas.status(timeout=0.3) is None
    finally:
        subprocess.run([*control, "start"], check=True, capture_output=True, timeout=60)
    back = time.monotonic()
    recovered: dict[int, float] = {}
    for index, node in enumerate(nodes):
        user = users[3 + index]
        with node.client(timeout=0.5) as nas:
            while time.monotonic() - back < 10:
                reply = nas.auth(user.login, user.password + user.bound.code())
                if reply is not None:
                    assert reply.code is Codes.ACCESS_ACCEPT
                    recovered[index] = time.monotonic() - back
                    break
    assert set(recovered) == {0, 1}, "a node did not recover"
    assert max(recovered.values()) <= 5.0, recovered
    for node in nodes:
        assert node.running, "a node died while the database was away"
        node.stop()


@pytest.mark.service
def test_a_worker_killed_under_load_is_replaced_and_nothing_is_accepted_twice(
    pg_site: Site,
) -> None:
    spec = ClientSpec(mode="split")
    node = pg_site.node(clients=[spec], workers=2).start()
    secret = spec.secret.encode()
    users = [pg_site.active_user() for _ in range(60)]
    # Each login twice, from different source ports, so both workers may see each one.
    sends = [
        (user.login, encode_request(secret, user_name=user.login, password=text))
        for user in users
        for text in [user.password + user.bound.code()] * 2
    ]
    victim = node.worker_pids()[0]
    sockets: list[socket.socket] = []
    for number, (_, data) in enumerate(sends):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, node.address)
        sockets.append(sock)
        if number == len(sends) // 3:
            os.kill(victim, signal.SIGKILL)
    time.sleep(2)
    accepted: Counter[str] = Counter()
    for sock, (login, data) in zip(sockets, sends, strict=True):
        sock.setblocking(False)
        try:
            raw = sock.recv(4096)
        except BlockingIOError:
            continue  # the killed worker's requests go unanswered: the NAS retries
        finally:
            sock.close()
        if decode_reply(raw, secret, data[4:20]).code is Codes.ACCESS_ACCEPT:
            accepted[login] += 1
    assert accepted, "nothing was accepted at all"
    assert max(accepted.values()) == 1, accepted.most_common(3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        len(node.worker_pids()) != 2 or victim in node.worker_pids()
    ):
        time.sleep(0.1)
    assert len(node.worker_pids()) == 2
    assert victim not in node.worker_pids()
    with node.client() as nas:
        late = pg_site.active_user()
        reply = nas.auth(late.login, late.password + late.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
    node.stop()


def test_killed_right_after_an_accept_the_otp_stays_spent_and_counters_intact(
    sqlite_site: Site,
) -> None:
    user = sqlite_site.active_user()
    other = sqlite_site.active_user()
    node = sqlite_site.node(mode="split", workers=1).start()
    with node.client() as nas:
        wrong = nas.auth(other.login, other.password + other.bound.wrong_code())
        assert wrong is not None
        assert wrong.code is Codes.ACCESS_REJECT
        text = user.password + user.bound.code()
        accept = nas.auth(user.login, text)
        assert accept is not None
        assert accept.code is Codes.ACCESS_ACCEPT
        node.kill()  # SIGKILL to the whole process group, the instant the Accept arrived
    again = sqlite_site.node(mode="split", workers=1).start()
    with again.client() as nas:
        replay = nas.auth(user.login, text)
        assert replay is not None
        assert replay.code is Codes.ACCESS_REJECT
    assert again.wait_for_log("reason=replay")
    assert sqlite_site.token(other.bound.serial).fail_count == 1
    assert sqlite_site.token(user.bound.serial).fail_count == 1  # the replay just now
    again.stop()


def test_password_guessing_is_stopped_by_the_password_lockout(sqlite_site: Site) -> None:
    user = sqlite_site.active_user()
    node = sqlite_site.node(mode="split", workers=1).start()
    with node.client() as nas:
        for attempt in range(10):
            reply = nas.auth(user.login, f"guess-{attempt}" + user.bound.code())
            assert reply is not None
            assert reply.code is Codes.ACCESS_REJECT
        right = nas.auth(user.login, user.password + user.bound.code())
        assert right is not None
        assert right.code is Codes.ACCESS_REJECT
    assert node.wait_for_log("reason=user_suspended")
    assert sqlite_site.user(user.login).suspended
    audit = sqlite_site.app.admin().audit()
    assert [(e.action, e.targets) for e in audit if e.action == "suspend"] == [
        ("suspend", (user.login,))
    ]
    node.stop()


def flood_unknown_users(secret: bytes, address: tuple[str, int], count: int) -> None:
    """Send ``count`` logins of unknown users from 127.0.0.2 back to back, each costing the
    server a full password hash."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.2", 0))
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    for number in range(count):
        data = encode_request(secret, user_name=f"nobody{number}", password="x" * 20,
                              identifier=number % 256)  # fmt: skip
        sender.sendto(data, address)
    sender.close()


def test_a_flood_from_one_client_does_not_delay_another_clients_login(
    sqlite_site: Site,
) -> None:
    flood = ClientSpec(name="flooder", address="127.0.0.2/32", secret=fresh_secret(), mode="split")
    good = ClientSpec(name="good-nas", address="127.0.0.3/32", secret=fresh_secret(), mode="split")
    # Unknown users cost a full password hash each: the flood is as expensive as it can be.
    hashing = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
    node = sqlite_site.node(clients=[flood, good], workers=1, hashing=hashing).start()
    user = sqlite_site.active_user()
    flood_unknown_users(flood.secret.encode(), node.address, 10_000)
    # Behind the fair queue the login waits for the flood's datagrams ahead of it in the
    # socket to be read and refused, well under a NAS's 3 to 5 s; in one queue it would wait
    # for 10,000 password hashes, tens of seconds. 2 s, not 1: CI runs on a busy host have
    # missed 1 s now and then.
    with node.client(good) as nas:
        started = time.monotonic()
        reply = nas.auth(user.login, user.password + user.bound.code(), timeout=2.0)
        elapsed = time.monotonic() - started
    assert reply is not None, "the good client's login got no answer within 2 s"
    assert reply.code is Codes.ACCESS_ACCEPT
    assert elapsed < 2.0
    node.stop()


def test_a_storm_of_password_checks_never_hashes_a_login_its_nas_gave_up_on(
    sqlite_site: Site,
) -> None:
    # A 9:00 storm larger than the hash threads can take: the checks queued past the limit
    # (shortened to 0.5 s here; 20 s as shipped) are dropped unhashed, so the server catches up
    # at once and the next login is answered, instead of waiting behind seconds of hashes for
    # requests whose NAS stopped waiting long ago.
    nas_spec = ClientSpec(name="vpn", address="127.0.0.2/32", secret=fresh_secret(), mode="split")
    hashing = {"time_cost": 3, "memory_kib": 32768, "parallelism": 1}
    node = sqlite_site.node(clients=[nas_spec], workers=1, hashing=hashing)
    path = [str(SHORT_HASH_WAIT), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    node.start(env={"PYTHONPATH": os.pathsep.join(filter(None, path))})
    user = sqlite_site.active_user()
    flood_unknown_users(nas_spec.secret.encode(), node.address, 400)
    time.sleep(1.0)  # the storm's checks are past the limit now, all but a few still queued
    # Hashed one after another, the 400 checks (75 ms each, two threads) would take 15 s.
    with node.client(nas_spec) as nas:
        reply = nas.auth(user.login, user.password + user.bound.code(), timeout=3.0)
    assert reply is not None, "the login after the storm got no answer within 3 s"
    assert reply.code is Codes.ACCESS_ACCEPT
    assert node.wait_for_log("drop reason=queued_too_long")
    node.stop()


def test_a_flooding_client_still_gets_the_cached_answer_to_a_resent_login(
    sqlite_site: Site,
) -> None:
    # Its queue of password checks is full, so its new requests are dropped unread; a resend
    # of one already answered must still get that answer, or its NAS counts an accepted
    # login as failed and the user types a fresh code for nothing.
    flood = ClientSpec(name="flooder", address="127.0.0.2/32", secret=fresh_secret(), mode="split")
    hashing = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}
    node = sqlite_site.node(clients=[flood], workers=1, hashing=hashing).start()
    user = sqlite_site.active_user()
    with node.client(flood) as nas:
        login = nas.build(user_name=user.login, password=user.password + user.bound.code())
        first = nas.exchange(login)
        assert first.reply is not None
        assert first.reply.code is Codes.ACCESS_ACCEPT
        flood_unknown_users(flood.secret.encode(), node.address, 5_000)
        again = nas.exchange(login, timeout=2.0)
    assert node.wait_for_log("drop reason=overload")
    assert again.reply_bytes == first.reply_bytes, "no answer to the resend during the flood"
    node.stop()


def test_a_row_locked_by_another_session_costs_that_users_login_not_the_nodes(
    pg_site: Site,
) -> None:
    # An administrator's psql session left open on a user's row (or an update import of many
    # users in progress) held up the node's whole batch, and every login behind it, until the
    # node called the database unreachable. Now only that user's request waits, 1.5 s, and
    # goes unanswered with nothing written; the NAS asks again.
    held_user, other = pg_site.active_user(), pg_site.active_user()
    node = pg_site.node(workers=1, mode="split").start()
    engine = create_engine(pg_site.database_url)
    try:
        with engine.connect() as session, node.client() as nas:
            lock = text("SELECT login FROM users WHERE login = :login FOR UPDATE")
            session.execute(lock, {"login": held_user.login})  # and the transaction stays open
            blocked = nas.build(user_name=held_user.login,
                                password=held_user.password + held_user.bound.code())  # fmt: skip
            nas.send(blocked)
            time.sleep(0.1)  # in the batch that meets the lock
            reply = nas.auth(other.login, other.password + other.bound.code(), timeout=3.0)
            assert reply is not None, "a login behind the locked row got no answer within 3 s"
            assert reply.code is Codes.ACCESS_ACCEPT
            assert nas.receive(blocked, timeout=1.0) is None  # dropped: the NAS asks again
            assert nas.status() is not None  # the node stays in service
            session.rollback()  # the session ends; its lock with it
            # Nothing of the dropped request was written: its code is still good.
            again = nas.exchange(blocked, timeout=3.0)
        assert again.reply is not None
        assert again.reply.code is Codes.ACCESS_ACCEPT
    finally:
        engine.dispose()
    assert node.wait_for_log("drop reason=row_locked")
    assert node.wait_for_log(f"rows locked by another transaction for over 1.5 s, their "
                             f"requests not written: user={held_user.login}")  # fmt: skip
    assert "database unreachable" not in node.log_text()
    node.stop()


def test_a_check_whose_row_another_session_holds_changes_nothing_and_says_so(
    pg_site: Site,
) -> None:
    # otpctl check and activate decide one request alone: told to try again, nothing written.
    user = pg_site.active_user()
    code = user.bound.code()
    request = AuthRequest(user.login, user.password + code, InputMode.SPLIT)
    engine = create_engine(pg_site.database_url)
    try:
        with engine.connect() as session:
            lock = text("SELECT login FROM users WHERE login = :login FOR UPDATE")
            session.execute(lock, {"login": user.login})
            with pytest.raises(RowsHeld, match=r"locked by another transaction.*try again"):
                pg_site.app.authenticator("tests").authenticate(request)
            session.rollback()
    finally:
        engine.dispose()
    # Not consumed: the same code logs in once the session has let go.
    outcome = pg_site.app.authenticator("tests").authenticate(request)
    assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.OK)


def _connections(node: Node, port: int) -> int:
    """How many TCP connections to ``port`` the node's processes hold, from ``/proc``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # ESTABLISHED
                    inodes.add(fields[9])
    assert node.process is not None
    held = 0
    for pid in [node.process.pid, *node.worker_pids()]:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


@pytest.mark.service
def test_a_node_holds_the_connections_readme_counts_and_no_idle_one_more(pg_site: Site) -> None:
    # README sizes max_connections by them: one a password-hash thread, one for the database
    # thread, one for the health probe, a worker. Each worker had also kept the connection
    # of its start-up checks, idle for as long as it ran.
    users = [pg_site.active_user() for _ in range(12)]
    port = make_url(pg_site.database_url).port or 5432
    with pg_site.node(mode="split", workers=2) as node, node.client() as nas:
        started = time.monotonic()
        # Before any login each worker holds two: its health probe's, and its database
        # thread's from the first purge of expired challenges (1 to 5 s after start). Counted
        # once both purges are due and the first worker's expiry report at start is done (how
        # long that takes depends on the machine's load): four for a second on end, where a
        # connection kept idle from start-up would hold the count at six or seven.
        deadline = started + 30
        steady_since: float | None = None
        while time.monotonic() < deadline:
            if _connections(node, port) != 4 or time.monotonic() - started < 6.0:
                steady_since = None
            elif steady_since is None:
                steady_since = time.monotonic()
            elif time.monotonic() - steady_since >= 1.0:
                break
            time.sleep(0.05)
        assert _connections(node, port) == 4
        for user in users:
            reply = nas.auth(user.login, user.password + user.bound.code())
            assert reply is not None
            assert reply.code is Codes.ACCESS_ACCEPT
        assert 4 <= _connections(node, port) <= 2 * (hash_threads() + 2)
