"""How long an Access-Reject is held before it leaves (SPEC §6 ``reject_delay``)."""

from __future__ import annotations

import random


def reject_wait(delay: float) -> float:
    """How long to hold one Access-Reject: ``reject_delay`` and up to a fifth more, never less.

    The jitter keeps the delay from telling a fast path from a slow one; it only lengthens
    it, as SPEC §6 promises the configured seconds before any Reject is sent.
    """
    return delay * random.uniform(1.0, 1.2)  # noqa: S311 - not a secret


def reject_hold(delay: float, spent: float) -> float:
    """How much longer to hold a Reject whose request arrived ``spent`` seconds ago.

    Counted from the arrival, not from the decision: held after the decision, a Reject came
    as much later as deciding took, so a stored hash of heavier parameters than ``[hashing]``
    (a migrated user not yet rehashed), or a commit where an unknown login writes nothing,
    told by its timing that the login exists (SPEC §3.1). From the arrival every Reject
    decided within the delay leaves at the same time.
    """
    return max(0.0, reject_wait(delay) - spent) if delay > 0 else 0.0
