"""SPEC §4 on the wire: who gets an answer, what every answer looks like, duplicates, PAP only,
hostile bytes, IPv6 and Japanese replies — real otp-radiusd processes over loopback UDP.

Every reply received through ``RadiusClient`` is checked for a valid Message-Authenticator as
its first attribute, a valid Response Authenticator and the request's Proxy-States in order.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import random
import re
import secrets
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radiusd.nas import encode_request
from radiusd.wire import Attr, Codes
from tests.conftest import require_service
from tests.integration.daemon import (
    REPO_ROOT,
    ClientSpec,
    Node,
    RadiusClient,
    Site,
    answered,
    fresh_name,
)
from tests.integration.turns import let_go, turn_held

SMALL_DEDUP_CACHE = Path(__file__).with_name("small_dedup_cache")
SMALL_INBOX = Path(__file__).with_name("small_inbox")
SMALL_HELD = Path(__file__).with_name("small_held")

PAP_ONLY = "Authentication failed: this server accepts PAP only."


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def with_trailing_mac(draft: bytes, secret: bytes, *, valid: bool = True) -> bytes:
    """Append a Message-Authenticator as the LAST attribute of a request built without one."""
    body = draft[20:] + bytes((80, 18)) + bytes(16)
    packet = draft[:2] + struct.pack("!H", 20 + len(body)) + draft[4:20] + body
    mac = hmac.digest(secret, packet, "md5") if valid else secrets.token_bytes(16)
    return packet[:-16] + mac


def test_no_answer_to_strangers_wrong_secrets_and_bad_message_authenticators(site: Site) -> None:
    alice = site.active_user()
    with site.node(mode="split") as node, node.client() as nas:
        secret = nas.secret
        login = {
            "user_name": alice.login,
            "password": alice.password + alice.bound.wrong_code(),
        }
        status = encode_request(secret, code=Codes.STATUS_SERVER)
        request = encode_request(secret, **login)
        # An address outside [[clients]] (127.0.0.2 while only 127.0.0.1 is configured).
        with node.client(source="127.0.0.2") as stranger:
            assert stranger.silent(status)
            assert stranger.silent(request)
        # The right address with a wrong shared secret.
        with RadiusClient(node.address, b"not-the-secret-at-all") as impostor:
            assert impostor.silent(encode_request(impostor.secret, code=Codes.STATUS_SERVER))
            assert impostor.silent(encode_request(impostor.secret, **login))
        # No Message-Authenticator, on Access-Request and on Status-Server.
        assert nas.silent(encode_request(secret, message_authenticator=False, **login))
        assert nas.silent(
            encode_request(secret, code=Codes.STATUS_SERVER, message_authenticator=False)
        )
        # A wrong Message-Authenticator, first or last.
        forged = bytearray(request)
        forged[22:38] = secrets.token_bytes(16)
        assert nas.silent(bytes(forged))
        draft = encode_request(secret, message_authenticator=False, **login)
        assert nas.silent(with_trailing_mac(draft, secret, valid=False))
        # Nothing was decided or counted; a valid Message-Authenticator anywhere is accepted.
        assert node.decisions() == []
        assert site.token(alice.bound.serial).fail_count == 0
        reply = nas.exchange(with_trailing_mac(draft, secret)).reply
        assert reply is not None
        assert reply.code is Codes.ACCESS_REJECT
        log = node.log_text()
        for reason in (
            "unknown_client",
            "bad_message_authenticator",
            "missing_message_authenticator",
        ):
            assert f"drop reason={reason} " in log


def test_limit_proxy_state_when_message_authenticator_is_optional(site: Site) -> None:
    bob = site.active_user()
    lenient = ClientSpec(mode="split", require_message_authenticator=False)
    with site.node(clients=[lenient]) as node, node.client() as nas:
        bare = {"user_name": bob.login, "password": bob.password + bob.bound.wrong_code()}
        assert nas.silent(
            encode_request(nas.secret, message_authenticator=False, proxy_states=[b"p"], **bare)
        )
        answered = nas.exchange(encode_request(nas.secret, message_authenticator=False, **bare))
        assert answered.reply is not None
        assert answered.reply.code is Codes.ACCESS_REJECT
        assert "drop reason=proxy_state_without_message_authenticator" in node.log_text()


def test_every_reply_is_signed_and_echoes_proxy_state_in_order(site: Site) -> None:
    carol = site.active_user()
    proxy_states = [b"first", b"\x00second\xff", b"3" * 40]
    with site.node(mode="auto") as node, node.client() as nas:
        status = nas.request(code=Codes.STATUS_SERVER, proxy_states=proxy_states).reply
        challenge = nas.auth(carol.login, carol.password, proxy_states=proxy_states)
        reject = nas.auth(carol.login, "wrong-" + carol.password, proxy_states=proxy_states)
        accept = nas.auth(
            carol.login, carol.password + carol.bound.code(), proxy_states=proxy_states
        )
        replies = [status, challenge, reject, accept]
        codes = [r.code if r else None for r in replies]
        assert codes == [
            Codes.ACCESS_ACCEPT,
            Codes.ACCESS_CHALLENGE,
            Codes.ACCESS_REJECT,
            Codes.ACCESS_ACCEPT,
        ]
        for reply in replies:
            assert reply is not None
            assert reply.attribute_types[0] == 80
            assert reply.message_authenticator_valid
            assert reply.response_authenticator_valid
            assert reply.proxy_states == tuple(proxy_states)
        assert challenge is not None
        assert challenge.state is not None
        assert len(challenge.state) >= 16


def test_chap_ms_chap_and_eap_get_a_pap_only_reject(site: Site) -> None:
    dave = site.active_user()
    chap = [(3, b"\x07" + secrets.token_bytes(16))]
    ms_chap = [
        (26, (311).to_bytes(4, "big") + bytes((11, 18)) + secrets.token_bytes(16)),
        (26, (311).to_bytes(4, "big") + bytes((25, 52)) + secrets.token_bytes(50)),
    ]
    eap = [(79, bytes((2, 0, 0, 9, 1)) + b"dave")]  # EAP-Response/Identity
    with site.node(mode="split") as node, node.client() as nas:
        for extra in (chap, ms_chap, eap):
            reply = nas.request(user_name=dave.login, extra_attributes=extra).reply
            assert reply is not None
            assert reply.code is Codes.ACCESS_REJECT
            assert reply.reply_message == PAP_ONLY
        # Without a User-Name as well: still the method, not the missing name, is the answer.
        reply = nas.request(extra_attributes=chap).reply
        assert reply is not None
        assert reply.reply_message == PAP_ONLY
        assert [d["reason"] for d in node.decisions()] == ["pap_required"] * 4
    assert site.token(dave.bound.serial).fail_count == 0


def test_user_password_beside_chap_ms_chap_or_eap_is_rejected_unread(site: Site) -> None:
    """RFC 2865 §4.1 forbids User-Password with CHAP-Password, and EAP is not spoken here:
    a request carrying both methods is refused, even with the right password and code."""
    frank = site.active_user()
    others = [
        [(3, b"\x07" + secrets.token_bytes(16))],
        [(26, (311).to_bytes(4, "big") + bytes((25, 52)) + secrets.token_bytes(50))],
        [(79, bytes((2, 0, 0, 10, 1)) + b"frank")],
    ]
    with site.node(mode="split") as node, node.client() as nas:
        code = frank.bound.code()
        for extra in others:
            reply = nas.auth(frank.login, frank.password + code, extra_attributes=extra)
            answered(reply, Codes.ACCESS_REJECT)
        assert [d["reason"] for d in node.decisions()] == ["invalid_request"] * 3
        # Nothing was checked or spent: the same code alone, PAP only, still gets in.
        answered(nas.auth(frank.login, frank.password + code), Codes.ACCESS_ACCEPT)
    assert site.token(frank.bound.serial).fail_count == 0


def test_a_login_that_is_not_utf8_gets_a_reject_not_silence(site: Site) -> None:
    """What a user types is not the NAS's to vouch for: a name in another encoding is refused
    as a password that is not UTF-8 is, since a NAS whose requests go unanswered fails over
    or falls back to its local accounts."""
    shift_jis = [(Attr.USER_NAME, "たろう".encode("shift_jis"))]
    with site.node(mode="auto") as node, node.client() as nas:
        first = nas.request(password="pw-" + secrets.token_urlsafe(9), extra_attributes=shift_jis)
        assert first.reply is not None
        assert first.reply.code is Codes.ACCESS_REJECT
        # Without a User-Password too, as any request without one is answered.
        assert answered(nas.request(extra_attributes=shift_jis).reply, Codes.ACCESS_REJECT)
        # A retransmission is answered from the cache, not decided again.
        assert nas.exchange(first.request).reply == first.reply
        decisions = node.decisions()
        assert [d["reason"] for d in decisions] == ["invalid_request"] * 2
        assert decisions[0]["user"] == r"\x82\xbd\x82\xeb\x82\xa4"
        assert nas.status() is not None


def test_eap_without_message_authenticator_is_dropped_whatever_the_client_allows(
    site: Site,
) -> None:
    erin = site.active_user()
    lenient = ClientSpec(mode="split", require_message_authenticator=False)
    eap = [(79, bytes((2, 0, 0, 9, 1)) + b"erin")]
    with site.node(clients=[lenient]) as node, node.client() as nas:
        login = {"user_name": erin.login, "password": erin.password + erin.bound.code()}
        assert nas.silent(
            encode_request(nas.secret, message_authenticator=False, extra_attributes=eap, **login)
        )
        assert node.decisions() == []
        assert "drop reason=eap_without_message_authenticator" in node.log_text()


def test_retransmission_is_answered_from_the_cache_and_counted_once(site: Site) -> None:
    erin = site.active_user()
    with site.node(mode="split") as node, node.client() as nas:
        wrong = encode_request(
            nas.secret, user_name=erin.login, password=erin.password + erin.bound.wrong_code()
        )
        first, again = nas.exchange(wrong), nas.exchange(wrong)
        assert first.reply is not None
        assert first.reply.code is Codes.ACCESS_REJECT
        assert again.reply_bytes == first.reply_bytes
        assert site.token(erin.bound.serial).fail_count == 1
        right = encode_request(
            nas.secret, user_name=erin.login, password=erin.password + erin.bound.code()
        )
        accepted, resent = nas.exchange(right), nas.exchange(right)
        assert accepted.reply is not None
        assert accepted.reply.code is Codes.ACCESS_ACCEPT
        assert resent.reply_bytes == accepted.reply_bytes  # not turned into a replay
        assert [d["reason"] for d in node.decisions()] == ["bad_otp", "ok"]
    assert site.token(erin.bound.serial).fail_count == 0


def test_other_bytes_under_an_answered_requests_key_get_no_answer(site: Site) -> None:
    """Whoever sends from the NAS's address with a captured Identifier and Request
    Authenticator must not have other content take the answer kept for the NAS."""
    erin = site.active_user()
    with site.node(mode="split") as node, node.client() as nas:
        right = encode_request(
            nas.secret, user_name=erin.login, password=erin.password + erin.bound.code()
        )
        accepted = nas.exchange(right)
        assert answered(accepted.reply, Codes.ACCESS_ACCEPT)
        # The same header, another login in place of erin's (its Message-Authenticator no
        # longer matches, as it would not for anyone without the secret).
        forged = right.replace(erin.login.encode(), b"m" * len(erin.login.encode()), 1)
        assert forged[:20] == right[:20]
        assert forged != right
        assert nas.silent(forged)
        assert "drop reason=conflicting_duplicate" in node.log_text()
        # The NAS's own retransmission still gets its answer.
        assert nas.exchange(right).reply_bytes == accepted.reply_bytes
        assert [d["reason"] for d in node.decisions()] == ["ok"]


def two_nas_node(
    site: Site, mode: str, patches: Path, policy: dict[str, float] | None = None
) -> tuple[Node, ClientSpec, ClientSpec]:
    """A started node with clients nas-a (127.0.0.1) and nas-b (127.0.0.2), whose daemon first
    imports the ``sitecustomize`` in ``patches``."""
    nas_a = ClientSpec(name="nas-a", address="127.0.0.1/32", mode=mode)
    nas_b = ClientSpec(name="nas-b", address="127.0.0.2/32", mode=mode)
    node = site.node(clients=[nas_a, nas_b], policy=policy)
    path = [str(patches), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    node.start(env={"PYTHONPATH": os.pathsep.join(filter(None, path))})
    return node, nas_a, nas_b


def flood(nas: RadiusClient, count: int, proxy_states: list[bytes]) -> int:
    """Send ``count`` requests with these Proxy-States, half Status-Server and half Rejects
    decided from the packet alone (no User-Password), 16 at a time so that none is lost on the
    way; return how many were answered (each reply checked as every reply is)."""
    nas.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
    answered = 0
    for start in range(0, count, 16):
        window: dict[int, bytes] = {}
        for n in range(start, min(start + 16, count)):
            kind = {"code": Codes.STATUS_SERVER} if n % 2 else {"user_name": "flood"}
            window[n % 256] = encode_request(
                nas.secret, identifier=n % 256, proxy_states=proxy_states, **kind
            )
        for request in window.values():
            nas.send(request)
        deadline = time.monotonic() + 3.0
        while window and (left := deadline - time.monotonic()) > 0:
            nas.sock.settimeout(left)
            try:
                raw = nas.sock.recv(65535)
            except TimeoutError:
                break
            request = window.pop(raw[1], None)
            if request is not None:
                nas.check(request, raw)
                answered += 1
    return answered


def test_a_flooding_client_cannot_push_another_clients_answers_out_of_the_cache(
    site: Site,
) -> None:
    # SPEC §4 whatever another NAS sends: B (anyone with its secret) makes each reply carry 3.8 KB
    # of its own Proxy-State back. Before each client had its own share of the cache, 1,000
    # such replies pushed A's answer out of the 4 MB this daemon's cache is cut to (16,000 at the
    # real 64 MB), and A's resent wrong OTP was decided and counted again.
    erin = site.active_user()
    node, nas_a, nas_b = two_nas_node(site, "split", SMALL_DEDUP_CACHE)
    with node, node.client(nas_a) as a, node.client(nas_b) as b:
        wrong = a.build(user_name=erin.login, password=erin.password + erin.bound.wrong_code())
        first = a.exchange(wrong)
        assert first.reply is not None
        assert first.reply.code is Codes.ACCESS_REJECT
        assert site.token(erin.bound.serial).fail_count == 1
        # Every Status-Server is answered, the same datagram again too.
        status = b.build(code=Codes.STATUS_SERVER)
        assert b.exchange(status).reply is not None
        assert b.exchange(status).reply is not None
        started = time.monotonic()
        assert flood(b, 2_000, [bytes([n]) * 253 for n in range(15)]) == 2_000
        assert time.monotonic() - started < 30
        again = a.exchange(wrong)
        assert again.reply_bytes == first.reply_bytes
        decided = [d["reason"] for d in node.decisions() if d["client"] == "nas-a"]
        assert decided == ["bad_otp"]
    assert site.token(erin.bound.serial).fail_count == 1


def drain(nas: RadiusClient, seconds: float) -> dict[int, bytes]:
    """Every datagram ``nas`` receives within ``seconds``, by identifier."""
    received: dict[int, bytes] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        nas.sock.settimeout(left)
        try:
            raw = nas.sock.recv(65535)
        except TimeoutError:
            break
        received[raw[1]] = raw
    return received


def test_a_client_flooding_the_database_queue_is_cut_off_and_another_still_gets_in(
    site: Site,
) -> None:
    # Requests that need no password check wait for the database thread in one queue per
    # client, each bounded (10 in this daemon, 5,000 in a real one). Before, they waited in one
    # list without bound: a NAS sending faster than the database thread decides grew it (and
    # the worker's memory) for as long as it sent, and every other NAS's logins queued behind.
    erin = site.active_user()
    node, nas_a, nas_b = two_nas_node(site, "otp", SMALL_INBOX)
    database = site.app.hot.engine.url.database
    assert database
    with (
        turn_held(f"{database}-writer") as holder,
        node,
        node.client(nas_a) as a,
        node.client(nas_b) as b,
    ):
        # Erin's login is decided and then waits for the turn to commit: the database
        # thread is held, and what arrives next waits in the queue.
        login = encode_request(
            a.secret, identifier=0, user_name=erin.login, password=erin.bound.code()
        )
        a.send(login)
        time.sleep(0.5)
        flood = [
            encode_request(a.secret, identifier=n, user_name=f"nobody{n}", password="123456")
            for n in range(1, 31)
        ]
        for request in flood:
            a.send(request)
        other = encode_request(b.secret, user_name="someone", password="654321")
        b.send(other)
        time.sleep(0.5)
        let_go(holder)
        answered = drain(a, 3.0)
        raw = b.receive(other)
        assert raw is not None
        assert b.check(other, raw).code is Codes.ACCESS_REJECT
    assert a.check(login, answered.pop(0)).code is Codes.ACCESS_ACCEPT
    # Ten waited and were decided; the twenty beyond the bound were dropped unanswered.
    assert sorted(answered) == list(range(1, 11))
    for number, raw in answered.items():
        assert a.check(flood[number - 1], raw).code is Codes.ACCESS_REJECT
    assert "drop reason=overload src=127.0.0.1 " in node.log_text()
    reasons = [(d["client"], d["reason"]) for d in node.decisions()]
    assert reasons.count(("nas-a", "unknown_user")) == 10
    assert ("nas-b", "unknown_user") in reasons


def test_a_client_cannot_have_more_rejects_held_than_its_bound(site: Site) -> None:
    # A Reject decided from the packet alone (here: no User-Password) costs no hash and no
    # database, so it is decided as fast as the loop reads; each was then held for the whole
    # reject delay with its reply and echoed Proxy-State, without bound. Ten may be held per
    # client in this daemon (5,000 in a real one); the rest are dropped, and the other client's
    # Reject is still held and sent.
    node, nas_a, nas_b = two_nas_node(site, "auto", SMALL_HELD, policy={"reject_delay": 1.0})
    with node, node.client(nas_a) as a, node.client(nas_b) as b:
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
        flood = [
            encode_request(
                a.secret, identifier=n, user_name=f"nobody{n}", proxy_states=[b"p" * 250]
            )
            for n in range(30)
        ]
        for request in flood:
            a.send(request)
        other = encode_request(b.secret, user_name="someone")
        b.send(other)
        answered = drain(a, 2.5)
        raw = b.receive(other)
        assert raw is not None
        assert b.check(other, raw).code is Codes.ACCESS_REJECT
    assert sorted(answered) == list(range(10))
    for number, reply in answered.items():
        assert a.check(flood[number], reply).code is Codes.ACCESS_REJECT
    assert "drop reason=overload src=127.0.0.1 " in node.log_text()


def test_a_reject_dropped_past_the_bound_is_not_decided_again_when_resent(site: Site) -> None:
    # Past the bound a Reject is not sent, but it was decided and counted all the same. Its
    # request was forgotten by the duplicate cache, so the NAS's retransmission was decided,
    # and counted, a second time: two wrong codes on the shared token for one typed.
    erin = site.active_user()
    node, nas_a, _ = two_nas_node(site, "split", SMALL_HELD, policy={"reject_delay": 2.0})
    with node, node.client(nas_a) as a:
        for n in range(10):  # no User-Password: decided at once, nothing counted, held
            a.send(encode_request(a.secret, identifier=n, user_name=f"nobody{n}"))
        wrong = a.build(
            identifier=10, user_name=erin.login, password=erin.password + erin.bound.wrong_code()
        )
        a.send(wrong)
        assert node.wait_for_log("reason=bad_otp")
        assert node.wait_for_log("drop reason=overload src=127.0.0.1 ")
        a.send(wrong)
        raw = a.receive(wrong, timeout=1.0)  # before the held ones go out
        assert raw is not None
        assert a.check(wrong, raw).code is Codes.ACCESS_REJECT
        decided = [d["reason"] for d in node.decisions()]
    assert decided.count("bad_otp") == 1
    assert site.token(erin.bound.serial).fail_count == 1


def resized(packet: bytes) -> bytes:
    """The packet with its Length field set to its size (so no octet is ignored as padding)."""
    return packet[:2] + struct.pack("!H", min(len(packet), 65535)) + packet[4:]


def hostile_datagrams(secret: bytes, rng: random.Random) -> list[bytes]:
    """A few hundred datagrams no server may answer or die of."""
    valid = encode_request(secret, user_name="hostile", password="pw")
    found: list[bytes] = []
    found += [valid[:cut] for cut in range(0, len(valid), 3)]  # truncated
    for length in (0, 1, 19, len(valid) + 1, 4097, 65535):  # bad length fields
        found.append(valid[:2] + struct.pack("!H", length) + valid[4:])
    for size in (0, 1, 255):  # attribute lengths 0 and 1, and overflowing the packet
        found.append(resized(valid + bytes((1, size))))
        found.append(resized(valid[:20] + bytes((1, size)) + valid[20:]))
    for size in (144, 160, 240, 17, 15, 0):  # User-Password too long, not 16n, empty
        value = rng.randbytes(size)
        found.append(encode_request(secret, user_name="u", extra_attributes=[(2, value)]))
    for code in range(256):  # unknown codes and replies sent as requests
        if code not in (Codes.ACCESS_REQUEST, Codes.STATUS_SERVER):
            found.append(bytes((code,)) + valid[1:])
    duplicated = [(1, b"again")]
    found.append(encode_request(secret, user_name="u", password="p", extra_attributes=duplicated))
    found.append(
        encode_request(
            secret, user_name="u", password="p", state=b"s", extra_attributes=[(24, b"t")]
        )
    )
    found.append(encode_request(secret, user_name="u", extra_attributes=[(80, bytes(15))]))
    found.append(resized(valid + bytes(5000)))  # longer than any RADIUS packet
    for _ in range(120):  # random data, some of it starting like a request
        blob = rng.randbytes(rng.randrange(0, 700))
        if blob and rng.random() < 0.5:
            blob = bytes((rng.choice((1, 12)),)) + blob[1:]
        found.append(blob)
    return found


def test_hostile_bytes_never_stop_the_server(site: Site) -> None:
    rng = random.Random(3596)
    with site.node(workers=1) as node, node.client() as nas:
        workers = node.worker_pids()
        datagrams = hostile_datagrams(nas.secret, rng)
        assert len(datagrams) > 300
        with RadiusClient(node.address, nas.secret) as attacker:
            for index, datagram in enumerate(datagrams):
                attacker.send(datagram)
                if index % 50 == 49:
                    assert nas.status() is not None, f"silent after datagram {index}"
            attacker.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                attacker.sock.recv(65535)  # nothing hostile was answered
        assert nas.status() is not None
        assert node.worker_pids() == workers  # no worker died on the way
        log = node.log_text()
        assert "drop reason=malformed:" in log or 'drop reason="malformed:' in log
        assert "worker died" not in log
        assert "handler failed" not in log


def test_a_burst_of_broken_packets_is_counted_whole_in_the_log(site: Site) -> None:
    # One line a minute per reason and client keeps a flood out of the log; the drops it held
    # back are told at the minute's end or, as here, at the stop, not left at "total=1".
    node = site.node(workers=1)
    node.start()
    with node.client() as nas, RadiusClient(node.address, nas.secret) as sender:
        valid = encode_request(nas.secret, user_name="burst", password="pw")
        for _ in range(4):
            sender.send(resized(valid + bytes((1, 0))))  # an attribute of length 0
        assert node.wait_for_log('drop reason="malformed:bad attribute length" ')
        assert nas.status() is not None  # the four were read before this was answered
    node.stop()
    lines = [line for line in node.log_text().splitlines() if "bad attribute length" in line]
    assert [line.split(" src=")[1] for line in lines] == [
        "127.0.0.1 client=local total=1",
        "127.0.0.1 client=local total=4 held_back=3",
    ]


def test_a_login_resent_from_another_port_is_answered_again_and_logged_as_resent(
    site: Site,
) -> None:
    # A NAS that lost the reply resends from another port (or to another node); it gets the
    # Accept again, and monitoring counting logins must not count this one twice.
    user = site.active_user()
    node = site.node(mode="split")
    node.start()
    with node.client() as nas, RadiusClient(node.address, nas.secret) as other_port:
        request = nas.build(user_name=user.login, password=user.password + user.bound.code())
        first = nas.exchange(request).reply
        assert first is not None
        assert first.code is Codes.ACCESS_ACCEPT
        other_port.send(request)
        again = other_port.receive(request)
        assert again is not None
        assert other_port.check(request, again).code is Codes.ACCESS_ACCEPT
        # A new request with the same code is a replay, not a resend.
        replay = nas.auth(user.login, user.password + user.bound.code())
        assert replay is not None
        assert replay.code is Codes.ACCESS_REJECT
    node.stop()
    decisions = node.decisions()
    assert [(d["result"], d["reason"], d.get("resent")) for d in decisions] == [
        ("accept", "ok", None),
        ("accept", "ok", "1"),
        ("reject", "replay", None),
    ]


def test_ipv6_listener_answers(site: Site) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        usable = True
    except OSError:
        usable = False
    require_service("IPv6 loopback", usable)
    fred = site.active_user()
    both = ClientSpec(address=["127.0.0.1/32", "::1/128"], mode="split")
    with (
        site.node(clients=[both], listen=("127.0.0.1", "::1")) as node,
        node.client(host="::1") as nas,
    ):
        assert nas.status() is not None
        reply = nas.auth(fred.login, fred.password + fred.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        (decision,) = node.decisions()
        assert decision["src"] == "::1"
        # Each listener as the configuration writes it: "::1:1812" reads as an address.
        assert re.search(r" listen=127\.0\.0\.1:\d+,\[::1\]:\d+ ", node.log_text())


@pytest.fixture
def link_local() -> str:
    """A usable link-local IPv6 address of this host with its interface (fe80::…%eth0)."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        # address, index, prefix length, scope, flags, name; scope 0x20 is the link's
        hexed, _, _, scope, flags, name = line.split()
        if int(scope, 16) == 0x20 and not int(flags, 16) & 0x48:  # not tentative nor failed
            address = ipaddress.ip_address(":".join(hexed[i : i + 4] for i in range(0, 32, 4)))
            return f"{address}%{name}"
    require_service("a link-local IPv6 address", False)
    raise AssertionError("unreachable")


def test_a_nas_on_a_link_local_address_is_answered_on_its_link(site: Site, link_local: str) -> None:
    """A VPN gateway on the same link, known by fe80::…%eth0: the reply must carry the zone,
    and the same address on another link (another machine) is not that client."""
    fred = site.active_user()
    gateway = ClientSpec(name="gw", address=link_local, mode="split")
    address, interface = link_local.split("%")
    # The same address on another link of this host: lo, or where the address is on lo (CI
    # adds one there to a machine without any), another interface (or one it does not have).
    names = [name for _, name in socket.if_nameindex() if name != interface]
    other = "lo" if "lo" in names else next(iter(names), "4000000")
    elsewhere = ClientSpec(name="elsewhere", address=f"{address}%{other}")
    with site.node(clients=[ClientSpec(), gateway], listen=("127.0.0.1", "::")) as node:
        with RadiusClient(
            (link_local, node.port), gateway.secret.encode(), source=link_local
        ) as nas:
            assert nas.status() is not None
            answered(nas.auth(fred.login, fred.password + fred.bound.code()), Codes.ACCESS_ACCEPT)
        (decision,) = node.decisions()
        assert decision["client"] == "gw"
        assert decision["src"] == link_local
    with site.node(clients=[ClientSpec(), elsewhere], listen=("127.0.0.1", "::")) as node:
        with RadiusClient(
            (link_local, node.port), elsewhere.secret.encode(), source=link_local
        ) as nas:
            assert nas.status(timeout=1.0) is None
        assert node.wait_for_log(f"drop reason=unknown_client src={link_local}")
        assert node.decisions() == []


def test_a_listener_on_a_link_local_address_answers_there(site: Site, link_local: str) -> None:
    """``listen = ["[fe80::1%eth0]:1812"]``: bound on that link, as the start line says."""
    fred = site.active_user()
    gateway = ClientSpec(name="gw", address=link_local, mode="split")
    with site.node(clients=[ClientSpec(), gateway], listen=("127.0.0.1", link_local)) as node:
        with RadiusClient(
            (link_local, node.port), gateway.secret.encode(), source=link_local
        ) as nas:
            answered(nas.auth(fred.login, fred.password + fred.bound.code()), Codes.ACCESS_ACCEPT)
        assert f",[{link_local}]:{node.port} " in node.log_text()


def test_a_japanese_login_is_logged_as_typed(site: Site) -> None:
    # What an operator greps syslog for: the login as the user typed it, not its escapes.
    login = fresh_name("山田-")
    with site.node(mode="split") as node, node.client() as nas:
        reject = nas.auth(login, "パスワード123456")
        assert reject is not None
        assert reject.code is Codes.ACCESS_REJECT
        assert f"reason=unknown_user user={login} client=" in node.log_text()
        assert [d["user"] for d in node.decisions()] == [login]


def test_reply_messages_in_japanese(site: Site) -> None:
    gina, hana = site.active_user(), site.add_user()
    with site.node(mode="challenge", policy={"reply_language": "ja"}) as node, node.client() as nas:
        challenge = nas.auth(gina.login, gina.password)
        assert challenge is not None
        assert challenge.code is Codes.ACCESS_CHALLENGE
        assert challenge.reply_message == (
            "トークンに表示されているワンタイムパスワードを入力してください。"
        )
        accept = nas.auth(gina.login, gina.bound.code(), state=challenge.state)
        assert accept is not None
        assert accept.code is Codes.ACCESS_ACCEPT
        assert accept.reply_message == "認証に成功しました。"
        for wrong in (nas.auth(hana.login, "wrong"), nas.auth("nobody-" + hana.login, "x")):
            assert wrong is not None
            assert wrong.code is Codes.ACCESS_REJECT
            assert wrong.reply_message == "認証に失敗しました。"
