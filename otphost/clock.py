"""The wall clock, handed to otpcore (which never reads it itself)."""

from __future__ import annotations

from datetime import UTC, datetime


def system_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
