"""Counting the datagrams a worker drops, and saying so in the log without flooding it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("otpradius.server")

DROP_LOG_INTERVAL_S = 60.0


@dataclass
class DropLog:
    """Counts drops by reason and logs at most one line per reason per interval."""

    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def drop(self, reason: str, source: str, now: float) -> None:
        """Count a dropped datagram and log it unless this reason was logged recently."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if now - self.last.get(reason, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
            self.last[reason] = now
            log.warning("drop reason=%s src=%s total=%d", reason, source, self.counts[reason])
