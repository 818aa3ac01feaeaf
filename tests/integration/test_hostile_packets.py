"""Generated and mutated datagrams through the packet path and the decision (SPEC §4).

Whatever arrives, ``RequestHandler.handle`` returns an answer or a drop: nothing raises out
of it, and nothing that was not a well-formed request with the right password and OTP is
ever accepted.
"""

from __future__ import annotations

import secrets
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpcore.app import App
from otpcore.client_config import ClientConfig
from otpcore.model import Algorithm, InputMode, UserClass
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec
from otpcore.totp import totp
from radiusd.handler import RequestHandler
from radiusd.nas import decode_reply, encode_request
from radiusd.wire import Attr, Codes

SECRET = b"hostile-test-secret-0123"
PASSWORD = "Corr3ct-Horse"
SEED = bytes(range(1, 21))
BOB_SEED = bytes(range(101, 121))
CAROL_SEED = bytes(range(151, 171))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[App, FrozenClock]:
    """One active user with a token, built through the public API, shared by the examples."""
    from pathlib import Path

    from otpcore.app import build_app
    from otpcore.config import parse_settings
    from otpcore.keys import create_key
    from otpcore.store import make_engine
    from otpcore.store.engine import create_private_sqlite_file
    from otpcore.store.schema import upgrade
    from tests.conftest import T0, settings_data

    root: Path = tmp_path_factory.mktemp("hostile")
    settings = parse_settings(settings_data(), root / "config.toml", Path.read_bytes)
    create_key(settings.key_file)
    create_private_sqlite_file(settings.database_url)
    upgrade(make_engine(settings.database_url))
    clock = FrozenClock(T0)
    app = build_app(settings, clock)
    admin = app.admin()
    admin.add_user("alice", "Alice", UserClass.GENERAL, PASSWORD)
    admin.import_tokens([TokenSpec("HOST0001", SEED, period=30)])
    admin.issue("alice", date(2026, 1, 1))
    code = totp(SEED, clock(), 30, 6, Algorithm.SHA1)
    assert app.authenticator().activate("alice", "HOST0001", code).result.value == "accept"
    admin.add_user("carol", "Carol", UserClass.GENERAL, PASSWORD)
    admin.import_tokens([TokenSpec("HOST0003", CAROL_SEED, period=30)])
    admin.issue("carol", date(2026, 1, 1))
    code = totp(CAROL_SEED, clock(), 30, 6, Algorithm.SHA1)
    assert app.authenticator().activate("carol", "HOST0003", code).result.value == "accept"
    # bob is never sent anything hostile: the positive control below logs him in.
    admin.add_user("bob", "Bob", UserClass.GENERAL, PASSWORD)
    admin.import_tokens([TokenSpec("HOST0002", BOB_SEED, period=30)])
    admin.issue("bob", date(2026, 1, 1))
    code = totp(BOB_SEED, clock(), 30, 6, Algorithm.SHA1)
    assert app.authenticator().activate("bob", "HOST0002", code).result.value == "accept"
    clock.advance(30)
    return app, clock


def _client(mode: InputMode, require_ma: bool = True) -> ClientConfig:
    import ipaddress

    return ClientConfig(
        name="fuzz",
        networks=(ipaddress.ip_network("127.0.0.1/32"),),
        secret=SECRET,
        mode=mode,
        require_message_authenticator=require_ma,
    )


def _valid(password: str, **kwargs: object) -> bytes:
    return encode_request(SECRET, user_name="alice", password=password, **kwargs)  # type: ignore[arg-type]


def _accepted(reply: bytes | None, request: bytes) -> bool:
    if reply is None:
        return False
    return decode_reply(reply, SECRET, request[4:20]).code is Codes.ACCESS_ACCEPT


attribute = st.tuples(st.integers(0, 255), st.binary(max_size=40))


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """Random bytes, or a plausible request broken in one of the ways attackers try."""
    kind = draw(st.sampled_from(["random", "mutated", "attributes", "truncated", "long_password"]))
    wrong = "Wrong-" + draw(st.text(min_size=0, max_size=20)) + "123456"
    base = _valid(wrong)
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind == "long_password":
        return encode_request(SECRET, user_name="alice", password=b"x" * 128) + b"\x02\x20"
    if kind == "attributes":
        extra = draw(st.lists(attribute, max_size=6))
        raw = b"".join(bytes([t, min(255, len(v) + 2)]) + v for t, v in extra)
        length = draw(st.sampled_from([len(base) + len(raw), len(base), 0, 19, 4096, 65535]))
        body = base[4:] + raw
        code = draw(st.sampled_from([1, 1, 1, 2, 4, 11, 12, 0, 255]))
        return bytes([code, base[1]]) + length.to_bytes(2, "big") + body
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(datagram=hostile(), mode=st.sampled_from(list(InputMode)), require_ma=st.booleans())
def test_nothing_hostile_raises_or_is_accepted(
    world: tuple[App, FrozenClock], datagram: bytes, mode: InputMode, require_ma: bool
) -> None:
    # Every datagram here names alice with a wrong password, so the first few suspend her;
    # that nothing raises is the point. Whether an altered request can be accepted is the
    # next test's, on a user who stays active.
    app, _ = world
    handler = RequestHandler(app.authenticator().authenticate, "en")
    answer = handler.handle(datagram, _client(mode, require_ma), "127.0.0.1")
    assert not _accepted(answer.reply, datagram)


@settings(max_examples=60, deadline=None)
@given(flip=st.integers(min_value=20 * 8, max_value=10_000))
def test_a_flipped_bit_in_a_good_request_is_never_accepted(
    world: tuple[App, FrozenClock], flip: int
) -> None:
    # carol is sent nothing else: the hostile examples above leave alice suspended, and a
    # test on her would pass whatever the packet checks did.
    app, clock = world
    clock.advance(30)  # a fresh step: each example's control below uses one up
    code = totp(CAROL_SEED, clock(), 30, 6, Algorithm.SHA1)
    request = encode_request(SECRET, user_name="carol", password=PASSWORD + code)
    flipped = bytearray(request)
    position = flip % (len(flipped) * 8)
    if position < 20 * 8 and position // 8 not in range(4, 20):
        position = 20 * 8 + position % ((len(flipped) - 20) * 8)  # keep code, id and length
    flipped[position // 8] ^= 1 << (position % 8)
    handler = RequestHandler(app.authenticator().authenticate, "en")
    client = _client(InputMode.SPLIT)
    answer = handler.handle(bytes(flipped), client, "127.0.0.1")
    assert not _accepted(answer.reply, bytes(flipped))
    # The control: the request as sent is accepted, so carol was there to be let in.
    assert _accepted(handler.handle(request, client, "127.0.0.1").reply, request)


def test_the_fixture_user_is_accepted_with_the_right_code(world: tuple[App, FrozenClock]) -> None:
    """The positive control: the same path accepts a correct request, so the tests above bite."""
    app, clock = world
    clock.advance(30)
    code = totp(BOB_SEED, clock(), 30, 6, Algorithm.SHA1)
    request = encode_request(SECRET, user_name="bob", password=PASSWORD + code,
                             authenticator=secrets.token_bytes(16))  # fmt: skip
    handler = RequestHandler(app.authenticator().authenticate, "en")
    answer = handler.handle(request, _client(InputMode.SPLIT), "127.0.0.1")
    assert _accepted(answer.reply, request)


def test_duplicate_user_password_and_missing_attributes_are_not_accepted(
    world: tuple[App, FrozenClock],
) -> None:
    app, clock = world
    clock.advance(30)
    code = totp(SEED, clock(), 30, 6, Algorithm.SHA1)
    handler = RequestHandler(app.authenticator().authenticate, "en")
    hidden = encode_request(SECRET, user_name="alice", password=PASSWORD + code)
    cases = [
        encode_request(SECRET, user_name="alice"),  # no User-Password
        encode_request(SECRET, password=PASSWORD + code),  # no User-Name
        encode_request(  # two User-Name attributes
            SECRET,
            user_name="alice",
            password=PASSWORD + code,
            extra_attributes=[(Attr.USER_NAME, b"bob")],
        ),
        hidden[:-1],  # one byte short
    ]
    for datagram in cases:
        answer = handler.handle(datagram, _client(InputMode.SPLIT), "127.0.0.1")
        assert not _accepted(answer.reply, datagram)
