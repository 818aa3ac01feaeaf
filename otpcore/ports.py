"""The seams of the core: what it needs from the outside world."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current instant (timezone-aware, UTC); the shells pass the wall clock."""

    def __call__(self) -> datetime: ...


PasswordVerifier = Callable[[str, str], bool]
"""(stored hash, offered password) -> True when they match."""


class FrozenClock:
    """A clock that stays where it is put, for tests and replays."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now = self.now + timedelta(seconds=seconds)
