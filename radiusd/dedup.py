"""RFC 5080 §2.2.2 duplicate detection: answer retransmissions from a cache, drop early ones.

A retransmission is a request with the same client address and port, Identifier and Request
Authenticator. While the first copy is being processed, copies are dropped; once its reply is sent,
copies get the same bytes again, so no request is processed or counted twice. Entries live `ttl`
seconds from the reply; one still being processed stays until it is finished, however long that
takes. The oldest go first when the cache is full. The caller passes the time in (a monotonic
clock); nothing here reads a clock.
Not thread-safe: use one cache per packet loop.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, NamedTuple

DEFAULT_TTL: Final = 30.0
DEFAULT_MAX_ENTRIES: Final = 65_536


class DedupKey(NamedTuple):
    """What makes two datagrams the same request (RFC 5080 §2.2.2)."""

    address: str
    port: int
    identifier: int
    authenticator: bytes


@dataclass(frozen=True, slots=True)
class New:
    """First copy of a request: process it, then call finish()."""


@dataclass(frozen=True, slots=True)
class InProgress:
    """The first copy is still being processed: drop this one."""


@dataclass(frozen=True, slots=True)
class Cached:
    """Already answered: send these bytes again."""

    response: bytes


Verdict = New | InProgress | Cached
NEW: Final = New()
IN_PROGRESS: Final = InProgress()


# An entry is a plain (stamp, response) tuple, response None while the request is being
# processed, and its key is stored as a plain tuple too. The garbage collector stops tracking
# a plain tuple of plain values at its first pass, but tracks a NamedTuple for its whole life:
# with the up to 65,536 requests of the window kept as NamedTuples, every pass over the older
# generations walked all of them and held the packet loop for 10 to 18 ms.
_Entry = tuple[float, bytes | None]


class DuplicateCache:
    """Bounded, expiring map of recent requests to their replies; every operation is O(1)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl
        self._max_entries = max_entries
        # Insertion order is stamp order (finish() moves an entry to the end with a new stamp), so
        # expiry and eviction only ever look at the front.
        self._entries: OrderedDict[tuple[str, int, int, bytes], _Entry] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of requests remembered (in progress or answered)."""
        return len(self._entries)

    def begin(self, key: DedupKey, now: float) -> Verdict:
        """Record a request arriving at `now` and say whether to process, drop or re-answer it."""
        self._expire(now)
        entry = self._entries.get(key)
        if entry is None:
            self._admit(key, now)
            return NEW
        response = entry[1]
        if response is None:
            return IN_PROGRESS
        return Cached(response)

    def finish(self, key: DedupKey, response: bytes | None, now: float) -> None:
        """Store the reply sent at `now`, or forget the request when none was sent."""
        self._expire(now)
        if key not in self._entries:
            # Expired or evicted while being processed: a later copy is simply processed again.
            return
        if response is None:
            # Nothing was sent (dropped, or no answer possible now): let a retransmission retry.
            del self._entries[key]
            return
        # The window restarts at the reply, so a client that lost it has the full `ttl` to retry.
        self._entries[key] = (now, response)
        self._entries.move_to_end(key)

    def _admit(self, key: DedupKey, now: float) -> None:
        while len(self._entries) >= self._max_entries:
            self._entries.popitem(last=False)
        self._entries[(key.address, key.port, key.identifier, key.authenticator)] = (now, None)

    def _expire(self, now: float) -> None:
        horizon = now - self._ttl
        entries = self._entries
        while entries:
            key, (stamp, response) = next(iter(entries.items()))
            if stamp > horizon:
                return
            if response is None:
                # Still being processed (a database that holds its write lock for a minute):
                # copies keep being dropped however long that takes, or each one that arrived
                # after `ttl` would be decided and counted again. Re-stamped, it goes to the
                # young end; only eviction of a full cache or finish() removes it.
                entries[key] = (now, None)
                entries.move_to_end(key)
                continue
            entries.popitem(last=False)
