"""The hold on an Access-Reject: never shorter than reject_delay (SPEC §6)."""

from __future__ import annotations

import pytest

from radiusd.worker import reject_wait


@pytest.mark.parametrize("delay", [0.05, 1.0, 10.0])
def test_a_reject_is_held_the_configured_time_and_at_most_a_fifth_more(delay: float) -> None:
    waits = [reject_wait(delay) for _ in range(2_000)]
    assert min(waits) >= delay
    assert max(waits) <= delay * 1.2
    # Still jittered: the hold does not tell a fast path from a slow one.
    assert max(waits) - min(waits) > delay * 0.1
