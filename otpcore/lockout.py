"""Suspension rules that are not a single counter: the unlock cascade to sharers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from otpcore.model import Token, User, shows_suspended


@dataclass(frozen=True, slots=True)
class UnlockPlan:
    """What an unlock clears, and whose shown suspension it lifts."""

    users: frozenset[str]  # logins whose own suspension and counters are cleared
    tokens: frozenset[str]  # serials whose suspension and fail count are cleared
    lifted: tuple[str, ...]  # logins that showed suspended before and not after, sorted


def plan_unlock(
    selected: Sequence[User], sharers: Sequence[User], tokens: Mapping[str, Token]
) -> UnlockPlan:
    """Unlock the selected users and the tokens they are bound to (SPEC §2 "Unlock").

    ``sharers`` are every user bound to one of those tokens; each of them whose suspension
    came only from the token is lifted too, as the manual says: 同じシリアル番号を使用している
    利用者も解除対象となります.
    """
    users = frozenset(user.login for user in selected)
    serials = frozenset(user.serial for user in selected if user.serial is not None)
    everyone = {user.login: user for user in (*selected, *sharers)}
    lifted: list[str] = []
    for login, user in everyone.items():
        token = tokens.get(user.serial) if user.serial is not None else None
        before = shows_suspended(user, token)
        user_after = user.suspended and login not in users
        token_after = token is not None and token.suspended and token.serial not in serials
        if before and not (user_after or token_after):
            lifted.append(login)
    return UnlockPlan(users, serials, tuple(sorted(lifted)))
