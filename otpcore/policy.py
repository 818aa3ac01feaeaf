"""The settings the rules need, frozen (from the ``[policy]`` table of the configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UnregisteredPolicy(StrEnum):
    """What a user with no token issued may do."""

    PASSWORD = "password"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Policy:
    """Authentication policy (SPEC §6 ``[policy]``)."""

    otp_window: int = 1
    lockout_threshold: int = 5
    password_lockout_threshold: int = 10
    unregistered: UnregisteredPolicy = UnregisteredPolicy.PASSWORD
    challenge_timeout: int = 120
    reject_delay: float = 1.0
    reply_language: str = "en"
    confirmation_lockout_threshold: int = 5
