"""Counting the datagrams a worker drops, and saying so in the log without flooding it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from otpcore.logfields import field as field_value

log = logging.getLogger("otpradius.server")

DROP_LOG_INTERVAL_S = 60.0
# The sources a held-back line names: a NAS administrator looks for an address of theirs, and a
# flood from spoofed addresses must not make the line or the worker grow with it.
SOURCES_NAMED = 4

Key = tuple[str, str | None]


@dataclass
class _Held:
    """The drops of one reason and client since its last line."""

    count: int = 0
    sources: list[str] = field(default_factory=list)  # distinct, in order, SOURCES_NAMED at most
    more: bool = False  # other sources beyond those

    def add(self, source: str) -> None:
        self.count += 1
        if source not in self.sources:
            if len(self.sources) < SOURCES_NAMED:
                self.sources.append(source)
            else:
                self.more = True


@dataclass
class DropLog:
    """Counts drops by reason and client; logs at most one line for each per interval.

    A drop within the interval after a line is held back, and told by the next line once the
    interval is over (at the next drop or ``flush``), with how many were held back and from
    where: a burst of four malformed packets must not read as one.
    """

    # Keyed by reason and client name, None for a source no client matched: the names are
    # the configured ones, so the table stays small whatever the sources, and one NAS's drops
    # (a retired gateway still sending) never hide another's (a new one with a wrong secret).
    counts: dict[Key, int] = field(default_factory=dict)
    last: dict[Key, float] = field(default_factory=dict)
    held: dict[Key, _Held] = field(default_factory=dict)

    def drop(self, reason: str, source: str, now: float, client: str | None = None) -> None:
        """Count a dropped datagram and log it unless this reason was logged recently."""
        key = (reason, client)
        self.counts[key] = self.counts.get(key, 0) + 1
        held = self.held.get(key)
        if held is None:  # not setdefault: a flood drops tens of thousands a second
            held = self.held[key] = _Held()
        held.add(source)
        if now - self.last.get(key, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
            self._say(key, now)

    def flush(self, now: float, *, everything: bool = False) -> None:
        """Log the drops held back whose interval is over (all of them, with ``everything``)."""
        for key in list(self.held):
            if everything or now - self.last[key] >= DROP_LOG_INTERVAL_S:
                self._say(key, now)

    def _say(self, key: Key, now: float) -> None:
        held = self.held.pop(key)
        self.last[key] = now
        reason, client = key
        sources = ",".join(held.sources) + (",..." if held.more else "")
        # The client, where known, says whose secret and settings applied: with a /24 and
        # a /32 overlapping, or after a reload removed the /32, the source alone does not.
        named = "" if client is None else f" client={field_value(client)}"
        more = "" if held.count == 1 else f" held_back={held.count}"
        log.warning("drop reason=%s src=%s%s total=%d%s", field_value(reason), sources, named,
                    self.counts[key], more)  # fmt: skip
