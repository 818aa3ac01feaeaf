"""The hold on an Access-Reject: never shorter than reject_delay (SPEC §6)."""

from __future__ import annotations

import pytest

from radiusd.reject_delay import reject_hold, reject_wait


@pytest.mark.parametrize("delay", [0.05, 1.0, 10.0])
def test_a_reject_is_held_the_configured_time_and_at_most_a_fifth_more(delay: float) -> None:
    waits = [reject_wait(delay) for _ in range(2_000)]
    assert min(waits) >= delay
    assert max(waits) <= delay * 1.2
    # Still jittered: the hold does not tell a fast path from a slow one.
    assert max(waits) - min(waits) > delay * 0.1


def test_the_hold_counts_from_the_arrival_so_deciding_takes_none_of_it() -> None:
    holds = [reject_hold(1.0, 0.4) for _ in range(2_000)]
    assert min(holds) >= 0.6
    assert max(holds) <= 0.8
    # A decision that took longer than the delay leaves at once; no delay, no hold.
    assert reject_hold(1.0, 1.3) == 0.0
    assert reject_hold(0.0, 0.0) == 0.0
