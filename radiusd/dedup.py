"""RFC 5080 §2.2.2 duplicate detection: answer retransmissions from a cache, drop early ones.

A retransmission is a request with the same client address and port, Identifier and Request
Authenticator. While the first copy is being processed, copies are dropped; once its reply is sent,
copies get the same bytes again, so no request is processed or counted twice. A datagram under
the same key whose bytes differ is no copy of the request: it is dropped, not answered, so that
nobody who can send from a NAS's address can have other content take a remembered answer.
Entries live `ttl` seconds from the reply; one still being processed stays until it is finished,
however long that takes.

Each configured client (a ``[[clients]]`` entry, however many addresses it covers) has its own
share of the cache, and a fair part of it: the entry and byte limits divided equally between the
clients. A share may grow past its part while the cache has room, so one busy NAS among many
quiet ones keeps the whole window; once the cache is full, the share furthest over its part
gives up its oldest entries. A client within its part therefore never loses an entry to
another's requests: a NAS that floods the server (or anyone holding its secret) only pushes out
its own, and cannot make another NAS's retransmissions be decided again. The limits are for the
whole cache, so the bound is the same whatever the number of clients: at the default sizes
64 MB at most, and the whole 30 s kept up to about 6,500 requests a second per worker, for
each client that stays within its part however busy the others are. The caller passes the time
in (a monotonic clock); nothing here reads a clock.
Not thread-safe: use one cache per packet loop.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

DEFAULT_TTL: Final = 30.0
# About 280 bytes an entry with an Accept's few attributes (55 MB when full): 30 s at 6,500
# requests a second.
DEFAULT_MAX_ENTRIES: Final = 196_608
# And never more than this in all, whatever the replies hold: a client may make each reply
# carry up to 4 KB of its own Proxy-State back, 840 MB at the entry limit.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


class DedupKey(NamedTuple):
    """What makes two datagrams the same request (RFC 5080 §2.2.2), and whose share it is in."""

    address: str
    port: int
    identifier: int
    authenticator: bytes
    # The name of the configured client the address belongs to.
    client: str
    # Of the whole datagram (``datagram_digest``): what tells a copy from another content.
    # No default: one shared by every key would take any datagram for a copy.
    digest: bytes


def datagram_digest(datagram: bytes) -> bytes:
    """Return the 16-byte fingerprint of a datagram a copy of it must match."""
    return hashlib.blake2b(datagram, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class New:
    """First copy of a request: process it, then call finish()."""


@dataclass(frozen=True, slots=True)
class InProgress:
    """The first copy is still being processed: drop this one."""


@dataclass(frozen=True, slots=True)
class Conflicting:
    """Another datagram under a remembered request's key: drop this one, answer nothing."""


@dataclass(frozen=True, slots=True)
class Cached:
    """Already answered: send these bytes again."""

    response: bytes


Verdict = New | InProgress | Conflicting | Cached
NEW: Final = New()
IN_PROGRESS: Final = InProgress()
CONFLICTING: Final = Conflicting()


# An entry is one bytes object, the stamp and the datagram's digest packed in front of the
# response (those alone while the request is being processed), under a key packed into bytes as
# well. That is about half the memory of tuples (264 against 469 bytes an entry, before the
# digest), so the cache holds three times the entries it did; and bytes are never walked by the
# garbage collector, which had held the packet loop for 10 to 18 ms when the keys were
# NamedTuples.
_STAMP = struct.Struct("!d")
_KEY_HEAD = struct.Struct("!HBB")
_DIGEST_SIZE: Final = 16
# The stamp and the digest: an entry of this length is still being processed.
_HEAD: Final = _STAMP.size + _DIGEST_SIZE
# What an entry costs beyond its key's and its value's bytes: two bytes objects and the
# ordered dict's slot and link (measured with tracemalloc, rounded up).
_ENTRY_OVERHEAD = 200


def _cost(packed: bytes, entry: bytes) -> int:
    return len(packed) + len(entry) + _ENTRY_OVERHEAD


def _checked(digest: bytes) -> bytes:
    if len(digest) != _DIGEST_SIZE:
        raise ValueError(f"a datagram's digest is {_DIGEST_SIZE} bytes, not {len(digest)}")
    return digest


def _verdict(entry: bytes, digest: bytes) -> InProgress | Conflicting | Cached:
    """What a remembered entry says of a datagram with this digest under its key."""
    if not hmac.compare_digest(entry[_STAMP.size : _HEAD], digest):
        return CONFLICTING
    if len(entry) == _HEAD:
        return IN_PROGRESS
    return Cached(entry[_HEAD:])


def _packed(key: DedupKey) -> bytes:
    # Lengths fixed or stated before the address, so no two keys pack alike. The client is not
    # packed: it names the share the key is looked up in.
    head = _KEY_HEAD.pack(key.port, key.identifier, len(key.authenticator))
    return head + key.authenticator + key.address.encode("utf-8", "surrogateescape")


class _Share:
    """One client's entries, oldest first, and their cost."""

    __slots__ = ("cost", "entries")

    def __init__(self) -> None:
        self.cost = 0  # the entries' cost, as _cost counts it
        # Insertion order is stamp order (finish() moves an entry to the end with a new
        # stamp), so expiry and eviction only ever look at the front.
        self.entries: OrderedDict[bytes, bytes] = OrderedDict()


class DuplicateCache:
    """Bounded, expiring map of recent requests to their replies, one share per client.

    Every operation is O(1) but ``set_clients`` and making room in a full cache, which looks
    at every share (O(clients)).
    """

    def __init__(
        self,
        clients: Iterable[str],
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._shares: dict[str, _Share] = {}
        self._share_entries = max_entries
        self._share_bytes = max_bytes
        self._entries = 0  # over every share
        self._cost = 0
        self.set_clients(clients)

    def __len__(self) -> int:
        """Return the number of requests remembered (in progress or answered)."""
        return sum(len(share.entries) for share in self._shares.values())

    def share_limits(self) -> tuple[int, int]:
        """One client's fair part, which it keeps whatever the others send: entries, and
        bytes as entries are costed."""
        return self._share_entries, self._share_bytes

    def set_clients(self, clients: Iterable[str]) -> None:
        """Give each of these clients (by name) an equal share; forget any other's entries.

        A client kept keeps its entries, its oldest forgotten if its share has shrunk; a request
        of a client no longer named that is still being processed stores nothing when finished.
        """
        names = set(clients)
        self._shares = {name: self._shares.get(name) or _Share() for name in names}
        count = max(1, len(names))
        self._share_entries = max(1, self._max_entries // count)
        self._share_bytes = max(1, self._max_bytes // count)
        self._entries = sum(len(share.entries) for share in self._shares.values())
        self._cost = sum(share.cost for share in self._shares.values())
        self._make_room(0, 0)

    def begin(self, key: DedupKey, now: float) -> Verdict:
        """Record a request arriving at `now` and say whether to process, drop or re-answer it."""
        share = self._shares.get(key.client)
        if share is None:
            raise KeyError(f"no share for client {key.client!r}")
        self._expire(share, now)
        packed = _packed(key)
        entry = share.entries.get(packed)
        if entry is None:
            self._store(share, packed, _STAMP.pack(now) + _checked(key.digest))
            return NEW
        return _verdict(entry, key.digest)

    def known(self, key: DedupKey, now: float) -> InProgress | Conflicting | Cached | None:
        """What ``begin`` would say of a request already remembered; None, and nothing
        recorded, for a new one (a request about to be dropped must not take a place)."""
        share = self._shares.get(key.client)
        if share is None:
            return None
        self._expire(share, now)
        entry = share.entries.get(_packed(key))
        if entry is None:
            return None
        return _verdict(entry, key.digest)

    def finish(self, key: DedupKey, response: bytes | None, now: float) -> None:
        """Store the reply sent at `now`, or forget the request when none was sent."""
        share = self._shares.get(key.client)
        if share is None:
            return  # its client was removed from the configuration meanwhile
        self._expire(share, now)
        packed = _packed(key)
        old = share.entries.pop(packed, None)
        if old is None:
            # Expired or evicted while being processed: a later copy is simply processed again.
            return
        share.cost -= _cost(packed, old)
        self._entries -= 1
        self._cost -= _cost(packed, old)
        if not response:
            # Nothing was sent (dropped, or no answer possible now): let a retransmission retry.
            return
        # The window restarts at the reply, so a client that lost it has the full `ttl` to retry.
        self._store(share, packed, _STAMP.pack(now) + old[_STAMP.size : _HEAD] + response)

    def _store(self, share: _Share, packed: bytes, entry: bytes) -> None:
        """Add an entry at the young end of its share, first making room for it."""
        cost = _cost(packed, entry)
        self._make_room(1, cost, share)
        share.entries[packed] = entry
        share.cost += cost
        self._entries += 1
        self._cost += cost

    def _make_room(self, entries: int, cost: int, adding: _Share | None = None) -> None:
        """Forget oldest entries until this many more, costing this much, fit in the cache;
        each time from the share furthest over its fair part, ``adding``'s counted with them
        (at its part, it is the one that would go over)."""
        while self._entries + entries > self._max_entries or self._cost + cost > self._max_bytes:
            # Whenever the cache is over a limit some share is over its part of it (the parts
            # add up to no more than the limits), so a share within its part is never chosen
            # while another is over. An entry larger than the whole cache still goes in, alone.
            victim = max(
                (share for share in self._shares.values() if share.entries),
                key=lambda share: self._overuse(share, adding, entries, cost),
                default=None,
            )
            if victim is None:
                return
            gone, value = victim.entries.popitem(last=False)
            victim.cost -= _cost(gone, value)
            self._entries -= 1
            self._cost -= _cost(gone, value)

    def _overuse(self, share: _Share, adding: _Share | None, entries: int, cost: int) -> float:
        """How far a share (``adding`` with this much more) is over its fair part: over 1.0
        when over it."""
        if share is not adding:
            entries = cost = 0
        return max(
            (len(share.entries) + entries) / self._share_entries,
            (share.cost + cost) / self._share_bytes,
        )

    def _expire(self, share: _Share, now: float) -> None:
        horizon = now - self._ttl
        entries = share.entries
        while entries:
            key, entry = next(iter(entries.items()))
            (stamp,) = _STAMP.unpack_from(entry)
            if stamp > horizon:
                return
            if len(entry) == _HEAD:
                # Still being processed (a database that holds its write lock for a minute):
                # copies keep being dropped however long that takes, or each one that arrived
                # after `ttl` would be decided and counted again. Re-stamped, it goes to the
                # young end; only eviction of a full share or finish() removes it.
                entries[key] = _STAMP.pack(now) + entry[_STAMP.size :]
                entries.move_to_end(key)
                continue
            gone, value = entries.popitem(last=False)
            share.cost -= _cost(gone, value)
            self._entries -= 1
            self._cost -= _cost(gone, value)
