"""Counting the datagrams a worker drops, and saying so in the log without flooding it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from otpcore.logfields import field as field_value

log = logging.getLogger("otpradius.server")

DROP_LOG_INTERVAL_S = 60.0


@dataclass
class DropLog:
    """Counts drops by reason and client; logs at most one line for each per interval."""

    # Keyed by reason and client name, None for a source no client matched: the names are
    # the configured ones, so the table stays small whatever the sources, and one NAS's drops
    # (a retired gateway still sending) never hide another's (a new one with a wrong secret).
    counts: dict[tuple[str, str | None], int] = field(default_factory=dict)
    last: dict[tuple[str, str | None], float] = field(default_factory=dict)

    def drop(self, reason: str, source: str, now: float, client: str | None = None) -> None:
        """Count a dropped datagram and log it unless this reason was logged recently."""
        key = (reason, client)
        self.counts[key] = self.counts.get(key, 0) + 1
        if now - self.last.get(key, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
            self.last[key] = now
            # The client, where known, says whose secret and settings applied: with a /24 and
            # a /32 overlapping, or after a reload removed the /32, the source alone does not.
            named = "" if client is None else f" client={field_value(client)}"
            log.warning("drop reason=%s src=%s%s total=%d", field_value(reason), source, named,
                        self.counts[key])  # fmt: skip
