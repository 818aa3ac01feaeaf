"""The unlock cascade (SPEC §2 "Unlock"): who is lifted, sharers included."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from otpcore.lockout import plan_unlock
from otpcore.model import Algorithm, Token, TokenKind, User, UserClass, shows_suspended


def user(login: str, serial: str | None = None, *, suspended: bool = False) -> User:
    return User(login, login.title(), UserClass.GENERAL, serial=serial, suspended=suspended)


def token(serial: str, *, suspended: bool = False) -> Token:
    return Token(
        serial,
        TokenKind.HARDWARE,
        Algorithm.SHA1,
        6,
        60,
        b"k" * 20,
        fail_count=5 if suspended else 0,
        suspended=suspended,
    )


def tokens(*items: Token) -> dict[str, Token]:
    return {item.serial: item for item in items}


def sharers_of(selected: Sequence[User], everyone: Sequence[User]) -> list[User]:
    serials = {u.serial for u in selected if u.serial is not None}
    return [u for u in everyone if u.serial in serials]


def test_unlock_of_one_sharer_lifts_every_user_of_the_token() -> None:
    taro, hanako, jiro = user("taro", "T1"), user("hanako", "T1"), user("jiro", "T2")
    inventory = tokens(token("T1", suspended=True), token("T2", suspended=True))
    plan = plan_unlock([taro], sharers_of([taro], [taro, hanako, jiro]), inventory)
    assert plan.users == frozenset({"taro"})
    assert plan.tokens == frozenset({"T1"})
    assert plan.lifted == ("hanako", "taro")


def test_a_sharer_suspended_on_its_own_account_stays_suspended() -> None:
    taro = user("taro", "T1")
    hanako = user("hanako", "T1", suspended=True)  # ten wrong passwords of her own
    inventory = tokens(token("T1", suspended=True))
    plan = plan_unlock([taro], [taro, hanako], inventory)
    assert plan.lifted == ("taro",)


def test_unlocking_a_user_suspended_twice_over_lifts_it_and_the_sharers() -> None:
    taro = user("taro", "T1", suspended=True)
    hanako = user("hanako", "T1")
    plan = plan_unlock([taro], [taro, hanako], tokens(token("T1", suspended=True)))
    assert plan.users == frozenset({"taro"})
    assert plan.lifted == ("hanako", "taro")


def test_unlocking_a_user_with_nothing_suspended_lifts_nobody() -> None:
    taro, hanako = user("taro", "T1"), user("hanako", "T1")
    plan = plan_unlock([taro], [taro, hanako], tokens(token("T1")))
    assert plan.lifted == ()
    assert plan.tokens == frozenset({"T1"})


def test_an_unbound_user_suspended_by_passwords_is_lifted_alone() -> None:
    kojima = user("kojima", suspended=True)
    plan = plan_unlock([kojima], [], {})
    assert plan == plan.__class__(frozenset({"kojima"}), frozenset(), ("kojima",))


def test_several_selected_users_on_several_tokens() -> None:
    a, b = user("a", "T1"), user("b", "T2", suspended=True)
    c, d = user("c", "T1"), user("d", "T2")
    inventory = tokens(token("T1", suspended=True), token("T2"))
    plan = plan_unlock([a, b], [a, b, c, d], inventory)
    assert plan.tokens == frozenset({"T1", "T2"})
    assert plan.lifted == ("a", "b", "c")


@given(
    data=st.lists(
        st.tuples(st.sampled_from(["T1", "T2", None]), st.booleans()), min_size=1, max_size=6
    ),
    suspended_tokens=st.sets(st.sampled_from(["T1", "T2"])),
    chosen=st.sets(st.integers(min_value=0, max_value=5), min_size=1),
)
def test_lifted_is_exactly_who_showed_suspended_and_no_longer_does(
    data: list[tuple[str | None, bool]], suspended_tokens: set[str], chosen: set[int]
) -> None:
    everyone = [user(f"u{i}", serial, suspended=s) for i, (serial, s) in enumerate(data)]
    selected = [everyone[i] for i in sorted(chosen) if i < len(everyone)] or everyone[:1]
    inventory = tokens(*(token(s, suspended=s in suspended_tokens) for s in ("T1", "T2")))
    plan = plan_unlock(selected, sharers_of(selected, everyone), inventory)
    selected_logins = {u.login for u in selected}
    after_tokens = {
        serial: token(serial, suspended=serial in suspended_tokens and serial not in plan.tokens)
        for serial in ("T1", "T2")
    }
    for person in sharers_of(selected, everyone) + selected:
        bound = inventory.get(person.serial) if person.serial else None
        after_user = user(
            person.login,
            person.serial,
            suspended=person.suspended and person.login not in selected_logins,
        )
        after = shows_suspended(after_user, after_tokens.get(person.serial or ""))
        assert (person.login in plan.lifted) == (shows_suspended(person, bound) and not after)
    # Nobody outside the selected users and their sharers is touched.
    touched = {u.login for u in sharers_of(selected, everyone)} | selected_logins
    assert set(plan.lifted) <= touched
