"""TOTP against the RFCs' own vectors and against Debian's oathtool."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpcore.model import Algorithm
from otpcore.totp import hmac_key, hotp, match_step, time_step, totp
from tests.conftest import require_command

SEEDS = {
    Algorithm.SHA1: b"12345678901234567890",
    Algorithm.SHA256: b"12345678901234567890123456789012",
    Algorithm.SHA512: b"1234567890123456789012345678901234567890123456789012345678901234",
}

# RFC 6238 Appendix B: (time, T, SHA1, SHA256, SHA512), 30 s, 8 digits.
RFC6238 = [
    (59, 0x1, "94287082", "46119246", "90693936"),
    (1111111109, 0x23523EC, "07081804", "68084774", "25091201"),
    (1111111111, 0x23523ED, "14050471", "67062674", "99943326"),
    (1234567890, 0x273EF07, "89005924", "91819424", "93441116"),
    (2000000000, 0x3F940AA, "69279037", "90698825", "38618901"),
    (20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"),
]

# The same seeds with a 60 s step (VECTORS.md).
SIXTY = [
    (59, 0x0, "84755224", "18920136", "53550594"),
    (1111111111, 0x11A91F6, "19360094", "40857319", "37023009"),
    (1234567890, 0x139F783, "55713351", "16450756", "85275929"),
    (2000000000, 0x1FCA055, "76864010", "34471171", "97791279"),
    (20000000000, 0x13DE4355, "52948864", "03964845", "01384259"),
]

# RFC 4226 Appendix D, counters 0-9.
RFC4226 = [
    "755224", "287082", "359152", "969429", "338314",
    "254676", "287922", "162583", "399871", "520489",
]  # fmt: skip


def _cases(table: list[tuple[int, int, str, str, str]]) -> list[tuple[int, int, Algorithm, str]]:
    algorithms = (Algorithm.SHA1, Algorithm.SHA256, Algorithm.SHA512)
    return [
        (at, step, algorithm, row[2 + i])
        for row in table
        for at, step in [row[:2]]
        for i, algorithm in enumerate(algorithms)
    ]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize(("at", "step", "algorithm", "code"), _cases(RFC6238))
def test_rfc6238_appendix_b(at: int, step: int, algorithm: Algorithm, code: str) -> None:
    assert time_step(_at(at), 30) == step
    assert totp(SEEDS[algorithm], _at(at), 30, 8, algorithm) == code


@pytest.mark.parametrize(("at", "step", "algorithm", "code"), _cases(SIXTY))
def test_sixty_second_step(at: int, step: int, algorithm: Algorithm, code: str) -> None:
    assert time_step(_at(at), 60) == step
    assert totp(SEEDS[algorithm], _at(at), 60, 8, algorithm) == code


@pytest.mark.parametrize(("counter", "code"), list(enumerate(RFC4226)))
def test_rfc4226_appendix_d(counter: int, code: str) -> None:
    assert hotp(SEEDS[Algorithm.SHA1], counter, 6, Algorithm.SHA1) == code


def test_six_digits_are_the_last_six_of_eight() -> None:
    # RFC 4226 truncation: the value modulo 10^digits, zero-padded.
    for at, _step, sha1, _sha256, _sha512 in RFC6238:
        assert totp(SEEDS[Algorithm.SHA1], _at(at), 30, 6, Algorithm.SHA1) == sha1[-6:]


def test_time_step_is_the_same_instant_in_any_timezone() -> None:
    jst = timezone(timedelta(hours=9))
    instant = datetime(2026, 12, 1, 9, 0, 59, tzinfo=jst)
    assert time_step(instant, 60) == time_step(instant.astimezone(UTC), 60)


def test_time_step_refuses_a_naive_datetime() -> None:
    # A naive datetime would be read as the host's local time (pyotp's trap).
    with pytest.raises(ValueError, match="timezone"):
        time_step(datetime(2026, 12, 1, 0, 0, 0), 30)  # noqa: DTZ001


class _NoOffset(tzinfo):
    """A zone that knows no offset: Python counts such a datetime as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_time_step_refuses_a_datetime_whose_zone_has_no_offset() -> None:
    with pytest.raises(ValueError, match="timezone"):
        time_step(datetime(2026, 12, 1, 0, 0, 0, tzinfo=_NoOffset()), 30)


# oathtool: our codes equal an independent implementation's for random secrets.

OATH_NAMES = {Algorithm.SHA1: "sha1", Algorithm.SHA256: "sha256", Algorithm.SHA512: "sha512"}


def _oathtool(secret: bytes, algorithm: Algorithm, digits: int, period: int, at: int) -> str:
    when = _at(at).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = [
        require_command("oathtool"),
        f"--totp={OATH_NAMES[algorithm]}",
        "-d",
        str(digits),
        "-s",
        str(period),
        "--now",
        when,
        secret.hex(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def oathtool_present() -> None:
    require_command("oathtool")


@pytest.mark.service
@pytest.mark.usefixtures("oathtool_present")
@pytest.mark.parametrize("period", [30, 60])
@pytest.mark.parametrize("algorithm", list(Algorithm))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.binary(min_size=16, max_size=64),
    digits=st.sampled_from([6, 8]),
    at=st.integers(min_value=0, max_value=4_102_444_799),  # up to 2099-12-31
)
def test_codes_equal_oathtool(
    period: int, algorithm: Algorithm, secret: bytes, digits: int, at: int
) -> None:
    ours = totp(secret, _at(at), period, digits, algorithm)
    assert ours == _oathtool(secret, algorithm, digits, period, at)


# match_step: the window, the latest match, malformed codes.

SECRET = SEEDS[Algorithm.SHA1]


def _code(step: int, digits: int = 6) -> str:
    return hotp(SECRET, step, digits, Algorithm.SHA1)


def _match(code: str, step: int, window: int = 1, digits: int = 6) -> int | None:
    return match_step(
        SECRET,
        code,
        step=step,
        window=window,
        digits=digits,
        algorithm=Algorithm.SHA1,
    )


@pytest.mark.parametrize("window", [0, 1, 2, 3])
def test_window_edges(window: int) -> None:
    step = 1_000_000
    for offset in range(-window, window + 1):
        assert _match(_code(step + offset), step, window) == step + offset
    assert _match(_code(step + window + 1), step, window) is None
    assert _match(_code(step - window - 1), step, window) is None


@given(
    window=st.integers(min_value=0, max_value=3),
    offset=st.integers(min_value=-20, max_value=20),
)
def test_only_steps_within_the_window_of_now_match(window: int, offset: int) -> None:
    step = 1_000_000
    matched = _match(_code(step + offset), step, window)
    # Another step of the window may share the code (about one in a million): then it is
    # that step, never one outside the window.
    assert matched is None or abs(matched - step) <= window
    if abs(offset) <= window:
        assert matched == step + offset


def test_window_does_not_reach_below_step_zero() -> None:
    assert _match(_code(0), 0, 2) == 0
    assert _match(_code(1), 0, 2) == 1


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "12345a", " 12345", "١٢٣٤٥٦", "12345²", "+12345", "-12345"],
)
def test_malformed_codes_never_match(code: str) -> None:
    assert _match(code, 1_000_000, window=10) is None


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _near(code: str) -> st.SearchStrategy[str]:
    """Texts a user could type for ``code``: itself, one digit off, one lost, one too many,
    in full width, padded, or anything at all."""
    places = st.integers(0, len(code) - 1)
    digits = st.sampled_from("0123456789")
    return st.one_of(
        st.just(code),
        st.tuples(places, digits).map(lambda p: code[: p[0]] + p[1] + code[p[0] + 1 :]),
        places.map(lambda place: code[:place] + code[place + 1 :]),
        st.tuples(places, digits).map(lambda p: code[: p[0]] + p[1] + code[p[0] :]),
        st.just(code.translate(FULL_WIDTH)),
        st.tuples(st.text(max_size=2), st.text(max_size=2)).map(lambda p: p[0] + code + p[1]),
        st.text(max_size=10),
    )


@given(offset=st.integers(-3, 3), data=st.data())
def test_only_a_code_of_the_window_itself_matches(offset: int, data: st.DataObject) -> None:
    step = 1_000_000
    shown = {_code(candidate): candidate for candidate in range(step - 2, step + 3)}
    typed = data.draw(_near(_code(step + offset)))
    matched = _match(typed, step, window=2)
    if typed in shown:
        assert matched == shown[typed]
    else:
        assert matched is None


@pytest.mark.parametrize(("step", "digits"), [(1_000_000, 6), (59_061_240, 6), (55_555, 8)])
def test_a_code_one_digit_off_never_matches(step: int, digits: int) -> None:
    # Every wrong code elsewhere is far from the right one; a check of some of the digits
    # only (a hundred times easier to guess with four of six) must not pass unseen.
    shown = {_code(candidate, digits) for candidate in range(step - 1, step + 2)}
    right = _code(step, digits)
    for place in range(digits):
        for digit in "0123456789":
            near = right[:place] + digit + right[place + 1 :]
            matched = _match(near, step, window=1, digits=digits)
            assert (matched is not None) == (near in shown), (place, digit)


def test_eight_digit_codes() -> None:
    step = 55_555
    assert _match(_code(step, 8), step, digits=8) == step
    assert _match(_code(step, 8)[-6:], step, digits=8) is None


# Two consecutive steps of the RFC 6238 SHA-1 seed that show the same six digits (found by
# search; oathtool agrees below). Such pairs come about once in a million steps.
TWIN_STEP = 59_061_240
TWIN_CODE = "963181"


def test_the_twin_steps_really_share_a_code() -> None:
    assert _code(TWIN_STEP) == _code(TWIN_STEP + 1) == TWIN_CODE
    for step in (TWIN_STEP, TWIN_STEP + 1):
        assert _oathtool(SECRET, Algorithm.SHA1, 6, 30, step * 30) == TWIN_CODE


def _match_after(code: str, step: int, last_step: int) -> int | None:
    return match_step(
        SECRET, code, step=step, window=1, digits=6, algorithm=Algorithm.SHA1, last_step=last_step
    )


def test_a_code_shared_with_the_next_step_does_not_use_that_step_up() -> None:
    # Typed in step s, the code stands for s, not for s+1: taking s+1 would make the
    # token's own code in the next step a replay.
    assert _match_after(TWIN_CODE, TWIN_STEP, last_step=-1) == TWIN_STEP
    assert _match_after(TWIN_CODE, TWIN_STEP + 1, last_step=TWIN_STEP) == TWIN_STEP + 1


def test_in_the_later_twin_step_the_code_stands_for_that_step() -> None:
    # The nearest step to now wins, not the earliest: taking s-1 would leave s unused and
    # let the same code in again.
    assert _match_after(TWIN_CODE, TWIN_STEP + 1, last_step=-1) == TWIN_STEP + 1


def test_a_code_shared_with_a_used_step_is_still_fresh() -> None:
    # Typed again in the step it was used in, the code stands for the next step.
    assert _match_after(TWIN_CODE, TWIN_STEP, last_step=TWIN_STEP) == TWIN_STEP + 1
    assert _match_after(TWIN_CODE, TWIN_STEP + 1, last_step=TWIN_STEP) == TWIN_STEP + 1
    assert _match_after(TWIN_CODE, TWIN_STEP + 2, last_step=TWIN_STEP) == TWIN_STEP + 1


def test_when_every_match_is_used_the_latest_is_returned_for_a_replay() -> None:
    assert _match_after(TWIN_CODE, TWIN_STEP + 1, last_step=TWIN_STEP + 1) == TWIN_STEP + 1
    assert _match_after(TWIN_CODE, TWIN_STEP, last_step=TWIN_STEP + 5) == TWIN_STEP + 1


@given(
    secret=st.binary(max_size=200),
    algorithm=st.sampled_from(list(Algorithm)),
    counter=st.integers(min_value=0, max_value=2**40),
)
def test_hmac_key_shows_the_codes_of_the_seed_it_stands_for(
    secret: bytes, algorithm: Algorithm, counter: int
) -> None:
    # What the import compares seeds by: it must be what HMAC computes with (RFC 2104 §2).
    key = hmac_key(secret, algorithm)
    assert hotp(key, counter, 8, algorithm) == hotp(secret, counter, 8, algorithm)
    assert not key.endswith(b"\0")


_DIGESTS = {
    Algorithm.SHA1: hashlib.sha1,
    Algorithm.SHA256: hashlib.sha256,
    Algorithm.SHA512: hashlib.sha512,
}


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("extra", [-1, 0, 1, 64])
def test_hmac_key_at_the_edge_of_the_hash_block(algorithm: Algorithm, extra: int) -> None:
    # RFC 2104 §2: a key as long as the block is used as it is; one byte longer is hashed.
    # Random seeds seldom reach 65 or 129 bytes, so the edge is drawn on purpose.
    block = _DIGESTS[algorithm]().block_size
    secret = bytes(range(1, 256))[: block + extra]
    key = hmac_key(secret, algorithm)
    expected = secret if extra <= 0 else _DIGESTS[algorithm](secret).digest()
    assert key == expected.rstrip(b"\0")
    for counter in (0, 1, 2**32):
        assert hotp(key, counter, 8, algorithm) == hotp(secret, counter, 8, algorithm)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_hmac_key_drops_only_the_zero_bytes_hmac_pads_with(algorithm: Algorithm) -> None:
    assert hmac_key(b"seed X\0\0", algorithm) == b"seed X"
    assert hmac_key(b"\0seed\0 \0", algorithm) == b"\0seed\0 "
