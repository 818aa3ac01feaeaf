"""argon2id hashing of login and confirmation passwords: what is stored, what verifies, what
an unknown login spends, and which stored hashes want a new one."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type
from hypothesis import given, settings
from hypothesis import strategies as st

from otpcore.errors import InvalidInput
from otpcore.passwords import HashingParams, PasswordHashing, check_phc

# Cheap enough for many examples; the shape of what is stored does not depend on the cost.
CHEAP = HashingParams(time_cost=1, memory_kib=64, parallelism=2)


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing(CHEAP)


def test_a_hash_is_argon2id_at_the_configured_cost(hashing: PasswordHashing) -> None:
    stored = hashing.hash("Hanako-pw-1")
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=2$")
    assert check_phc(stored) == stored  # what an export of it could import again
    assert "Hanako-pw-1" not in stored


def test_each_hash_has_its_own_salt(hashing: PasswordHashing) -> None:
    assert hashing.hash("same-pw-123") != hashing.hash("same-pw-123")


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_only_the_password_hashed_verifies(
    hashing: PasswordHashing, password: str, other: str
) -> None:
    stored = hashing.hash(password)
    assert hashing.verify(stored, password) is True
    assert hashing.verify(stored, other) is (other == password)


def test_an_empty_password_is_refused_not_hashed(hashing: PasswordHashing) -> None:
    with pytest.raises(InvalidInput, match=r"^a password must not be empty$"):
        hashing.hash("")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not-a-hash",
        "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZa",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!!",
    ],
)
def test_a_stored_value_that_is_no_hash_verifies_nothing(
    hashing: PasswordHashing, stored: str
) -> None:
    # A damaged row refuses its user's logins; it must not take the request down with it.
    assert hashing.verify(stored, "anything-1") is False
    if not stored.startswith("$argon2"):
        assert hashing.needs_rehash(stored) is False  # nothing to compare the cost of


@pytest.mark.parametrize("kind", [Type.ID, Type.I, Type.D])
def test_an_imported_hash_of_other_parameters_verifies_and_wants_rehashing(
    hashing: PasswordHashing, kind: Type
) -> None:
    # A migration's hashes were made elsewhere: the user logs in with them, and the first
    # login stores one at this server's cost.
    imported = PasswordHasher(time_cost=2, memory_cost=32, parallelism=1, type=kind).hash("pw-1")
    assert check_phc(imported) == imported
    assert hashing.verify(imported, "pw-1") is True
    assert hashing.verify(imported, "pw-2") is False
    assert hashing.needs_rehash(imported) is True
    assert hashing.needs_rehash(hashing.hash("pw-1")) is False


def test_another_cost_wants_the_hashes_of_this_one_rehashed() -> None:
    stored = PasswordHashing(CHEAP).hash("pw-1")
    for other in (
        HashingParams(time_cost=2, memory_kib=64, parallelism=2),
        HashingParams(time_cost=1, memory_kib=128, parallelism=2),
        HashingParams(time_cost=1, memory_kib=64, parallelism=1),
    ):
        assert PasswordHashing(other).needs_rehash(stored) is True


def test_an_unknown_login_spends_one_verification_at_the_configured_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashing = PasswordHashing(CHEAP)
    verified: list[tuple[str, str]] = []
    real_verify = PasswordHasher.verify

    def counting(self: PasswordHasher, stored: str | bytes, offered: str | bytes) -> bool:
        verified.append((str(stored), str(offered)))
        return real_verify(self, stored, offered)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    hashing.burn("typed-pw-1")
    hashing.burn("typed-pw-2")
    # Each burn is one verification of what was typed, against one hash made once at this
    # server's cost: an unknown login takes as long as a known one's wrong password.
    assert [offered for _, offered in verified] == ["typed-pw-1", "typed-pw-2"]
    dummies = {stored for stored, _ in verified}
    assert len(dummies) == 1
    (dummy,) = dummies
    assert dummy.startswith("$argon2id$v=19$m=64,t=1,p=2$")
