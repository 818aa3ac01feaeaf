"""The wall clock's steps, seen against a steady clock."""

from __future__ import annotations

from radiusd.clock_steps import ClockSteps


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.steady = 500.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.steady += seconds


def test_a_clock_that_runs_steadily_or_is_slewed_has_not_stepped() -> None:
    clocks = Clocks()
    steps = ClockSteps(lambda: clocks.wall, lambda: clocks.steady)
    for _ in range(10):
        clocks.tick(1.0)
        assert steps.look() == 0.0
    clocks.wall += 0.120  # what NTP slews rather than steps
    assert steps.look() == 0.0


def test_a_step_back_and_a_step_forward_are_said_once_each() -> None:
    clocks = Clocks()
    steps = ClockSteps(lambda: clocks.wall, lambda: clocks.steady)
    clocks.tick(1.0)
    clocks.wall -= 90.0
    assert steps.look() == -90.0
    clocks.tick(1.0)
    assert steps.look() == 0.0  # measured from the new time, not said again
    clocks.wall += 3600.0
    clocks.tick(1.0)
    assert steps.look() == 3600.0
