"""Noticing the wall clock stepped: every code is checked against it."""

from __future__ import annotations

import time
from collections.abc import Callable

# NTP slews offsets below 128 ms and steps larger ones; a second is no slew.
STEP_S = 1.0


def boot_seconds() -> float:
    """Seconds since boot, counting suspend: a suspended host's wall clock moved on as well."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class ClockSteps:
    """Compares the wall clock with a steady one at each look, and says by how much it stepped."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        steady: Callable[[], float] = boot_seconds,
    ) -> None:
        self._wall = wall
        self._steady = steady
        self._offset = wall() - steady()

    def look(self) -> float:
        """Seconds the wall clock stepped since the last look (negative: back), or 0.0."""
        offset = self._wall() - self._steady()
        step = offset - self._offset
        self._offset = offset
        return step if abs(step) >= STEP_S else 0.0
