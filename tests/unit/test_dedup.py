"""RFC 5080 duplicate cache: verdicts, expiry, eviction, one share per client."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiusd.dedup import (
    _ENTRY_OVERHEAD,
    CONFLICTING,
    DEFAULT_MAX_BYTES,
    IN_PROGRESS,
    NEW,
    Cached,
    DedupKey,
    DuplicateCache,
    datagram_digest,
)

NAS = "vpn-gw-1"
AUTH = bytes(range(16))
DIGEST = datagram_digest(b"a request")


def request_key(
    address: str, port: int, identifier: int, authenticator: bytes, client: str
) -> DedupKey:
    """A request's key, its datagram's digest the same for every key of a test."""
    return DedupKey(address, port, identifier, authenticator, client, DIGEST)


KEY = request_key("192.0.2.1", 40000, 7, AUTH, NAS)
REPLY = b"\x02\x07\x00\x14" + bytes(16)


def test_first_copy_is_new_and_a_copy_before_the_reply_is_in_progress() -> None:
    cache = DuplicateCache([NAS])
    assert cache.begin(KEY, 0.0) is NEW
    assert cache.begin(KEY, 1.0) is IN_PROGRESS


def test_copy_after_the_reply_gets_the_cached_bytes() -> None:
    cache = DuplicateCache([NAS])
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 1.0)
    assert cache.begin(KEY, 2.0) == Cached(REPLY)
    assert cache.begin(KEY, 3.0) == Cached(REPLY)


def test_other_bytes_under_a_remembered_key_are_neither_answered_nor_decided() -> None:
    cache = DuplicateCache([NAS])
    sent = KEY._replace(digest=datagram_digest(b"the NAS's request"))
    forged = KEY._replace(digest=datagram_digest(b"another content"))
    assert cache.begin(sent, 0.0) is NEW
    assert cache.begin(forged, 0.5) is CONFLICTING
    cache.finish(sent, REPLY, 1.0)
    assert cache.begin(forged, 2.0) is CONFLICTING
    assert cache.known(forged, 2.0) is CONFLICTING
    # The NAS's own copy still gets its answer, at the end of a window the forgery did not
    # restart.
    assert cache.begin(sent, 30.9) == Cached(REPLY)
    assert cache.known(sent, 30.9) == Cached(REPLY)
    assert cache.begin(forged, 31.1) is NEW


def test_a_request_still_processed_past_the_ttl_keeps_its_digest() -> None:
    cache = DuplicateCache([NAS], ttl=30.0)
    sent = KEY._replace(digest=datagram_digest(b"slow request"))
    cache.begin(sent, 0.0)
    cache.begin(request_key("192.0.2.9", 1, 1, AUTH, NAS), 31.0)  # expiry re-stamps it
    assert cache.begin(KEY._replace(digest=datagram_digest(b"other")), 31.5) is CONFLICTING
    assert cache.begin(sent, 31.5) is IN_PROGRESS
    cache.finish(sent, REPLY, 32.0)
    assert cache.begin(sent, 33.0) == Cached(REPLY)


def test_a_digest_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes, not 15"):
        DuplicateCache([NAS]).begin(KEY._replace(digest=bytes(15)), 0.0)


@pytest.mark.parametrize(
    "other",
    [
        request_key("192.0.2.2", 40000, 7, AUTH, NAS),
        request_key("192.0.2.1", 40001, 7, AUTH, NAS),
        request_key("192.0.2.1", 40000, 8, AUTH, NAS),
        request_key("192.0.2.1", 40000, 7, bytes(16), NAS),
    ],
    ids=["address", "port", "identifier", "authenticator"],
)
def test_any_differing_key_part_makes_a_new_request(other: DedupKey) -> None:
    cache = DuplicateCache([NAS])
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 0.0)
    assert cache.begin(other, 1.0) is NEW


def test_answered_entry_expires_ttl_after_the_reply() -> None:
    cache = DuplicateCache([NAS], ttl=30.0)
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 5.0)
    assert cache.begin(KEY, 34.9) == Cached(REPLY)
    assert cache.begin(KEY, 35.0) is NEW


def test_a_request_still_being_processed_after_ttl_keeps_its_copies_dropped() -> None:
    # A write-locked database can hold a request for a minute; the NAS resends it every few
    # seconds. A copy decided beside the first would be counted again (SPEC §4).
    cache = DuplicateCache([NAS], ttl=10.0)
    cache.begin(KEY, 0.0)
    assert cache.begin(KEY, 9.9) is IN_PROGRESS
    assert cache.begin(KEY, 10.0) is IN_PROGRESS
    assert cache.begin(KEY, 65.0) is IN_PROGRESS
    cache.finish(KEY, REPLY, 70.0)
    assert cache.begin(KEY, 79.9) == Cached(REPLY)
    assert cache.begin(KEY, 80.0) is NEW


def test_finish_without_a_reply_lets_a_retransmission_be_processed() -> None:
    cache = DuplicateCache([NAS])
    cache.begin(KEY, 0.0)
    cache.finish(KEY, None, 1.0)
    assert len(cache) == 0
    assert cache.begin(KEY, 2.0) is NEW


def test_finish_after_eviction_stores_nothing() -> None:
    cache = DuplicateCache([NAS], ttl=30.0, max_entries=1)
    cache.begin(KEY, 0.0)
    cache.begin(request_key("192.0.2.9", 1, 1, AUTH, NAS), 1.0)
    cache.finish(KEY, REPLY, 2.0)
    assert cache.begin(KEY, 3.0) is NEW


def test_full_cache_evicts_the_oldest_entry() -> None:
    cache = DuplicateCache([NAS], max_entries=2)
    keys = [request_key("192.0.2.1", 40000, i, AUTH, NAS) for i in range(3)]
    for i, key in enumerate(keys):
        assert cache.begin(key, float(i)) is NEW
    assert len(cache) == 2
    assert cache.begin(keys[2], 3.0) is IN_PROGRESS
    assert cache.begin(keys[1], 3.0) is IN_PROGRESS
    assert cache.begin(keys[0], 3.0) is NEW


def test_finish_moves_an_entry_to_the_young_end() -> None:
    cache = DuplicateCache([NAS], ttl=30.0, max_entries=2)
    first, second = (request_key("192.0.2.1", 40000, i, AUTH, NAS) for i in range(2))
    cache.begin(first, 0.0)
    cache.begin(second, 1.0)
    cache.finish(first, REPLY, 2.0)
    # `second` is now the oldest and makes room for a third request.
    cache.begin(request_key("192.0.2.9", 1, 1, AUTH, NAS), 3.0)
    assert cache.begin(first, 4.0) == Cached(REPLY)
    assert cache.begin(second, 4.0) is NEW


def test_expiry_removes_every_stale_entry_at_once() -> None:
    cache = DuplicateCache([NAS], ttl=30.0)
    for i in range(100):
        key = request_key("192.0.2.1", 40000, i % 256, bytes([i]) * 16, NAS)
        cache.begin(key, i / 10)
        cache.finish(key, REPLY, i / 10)
    cache.begin(KEY, 100.0)
    assert len(cache) == 1


def test_expiry_takes_the_stale_entries_and_keeps_the_fresh_ones() -> None:
    # A request still being processed heads the share; answered ones, stale and fresh,
    # follow it. One pass takes every stale answer and leaves the rest remembered.
    cache = DuplicateCache([NAS], ttl=30.0)
    waiting = KEY._replace(port=1)
    assert cache.begin(waiting, 0.0) is NEW
    keys = [KEY._replace(port=2 + i) for i in range(10)]
    for i, key in enumerate(keys):
        answered(cache, key, REPLY, float(i))
    verdicts = [cache.known(key, 35.5) for key in keys]
    assert verdicts == [None] * 6 + [Cached(REPLY)] * 4
    assert cache.known(waiting, 35.5) is IN_PROGRESS
    assert len(cache) == 5


def test_expired_entries_give_their_room_back() -> None:
    # After each quiet spell the whole cache holds a new burst as large as it, so a
    # retransmission of the burst's first request is still answered from it.
    cache = DuplicateCache(["a", "b"], ttl=30.0, max_entries=8, max_bytes=8 * 600)
    for burst, start in enumerate((0.0, 100.0, 200.0, 300.0)):
        keys = [request_key("192.0.2.1", burst, i, AUTH, "ab"[i % 2]) for i in range(8)]
        for i, key in enumerate(keys):
            answered(cache, key, REPLY, start + i / 100)
        assert [cache.known(key, start + 1) for key in keys] == [Cached(REPLY)] * 8, burst


@pytest.mark.parametrize("bound", ["entries", "bytes"])
def test_a_share_that_expired_is_counted_at_what_it_has_left(bound: str) -> None:
    # a's entries expire while b's are fresh. The cache counts exactly what remains, so it
    # neither grows past its limit nor pushes out an entry it has room for.
    probe = DuplicateCache(["a"])
    answered(probe, KEY._replace(client="a"), REPLY, 0.0)
    entry = held(probe)
    limits = {"max_entries": 10} if bound == "entries" else {"max_bytes": 10 * entry}
    cache = DuplicateCache(["a", "b"], ttl=30.0, **limits)
    a_old, a_new, b_keys = (
        [request_key("192.0.2.1", 1, first + i, AUTH, client) for i in range(5)]
        for first, client in ((0, "a"), (100, "a"), (0, "b"))
    )
    for keys, start in ((a_old, 0.0), (b_keys, 20.0), (a_new, 31.0)):
        for i, key in enumerate(keys):
            answered(cache, key, REPLY, start + i / 100)
    assert [cache.known(key, 32.0) for key in (*a_new, *b_keys)] == [Cached(REPLY)] * 10
    assert (len(cache), held(cache)) == (10, 10 * entry)
    # Full at both parts: b's next request pushes out b's own oldest.
    answered(cache, request_key("192.0.2.1", 1, 200, AUTH, "b"), REPLY, 32.0)
    assert cache.known(b_keys[0], 32.5) is None
    assert [cache.known(key, 32.5) for key in (*a_new, *b_keys[1:])] == [Cached(REPLY)] * 9
    assert (len(cache), held(cache)) == (10, 10 * entry)


def test_a_reply_larger_than_the_whole_cache_is_still_kept_alone() -> None:
    # A client's Proxy-State can make a reply of 4 KB; a cache sized below that keeps it.
    cache = DuplicateCache([NAS], max_bytes=1_000)
    big = b"\x02" + bytes(4_095)
    answered(cache, KEY, big, 0.0)
    assert cache.begin(KEY, 1.0) == Cached(big)
    other = KEY._replace(port=2)
    answered(cache, other, big, 2.0)
    assert (cache.known(KEY, 3.0), cache.known(other, 3.0)) == (None, Cached(big))


def test_a_client_over_its_part_in_bytes_gives_its_own_entries_first() -> None:
    # b's large replies (a Proxy-State echoed back) took the room a left; when a needs it,
    # b's oldest go, though b has fewer entries than a and none of them alone is large.
    big = b"\x02" + bytes(1_499)
    cache = DuplicateCache(["a", "b"], max_entries=100, max_bytes=20_000)
    b_keys = [request_key("192.0.2.2", 1, i, AUTH, "b") for i in range(8)]
    for i, key in enumerate(b_keys):
        answered(cache, key, big, float(i))
    a_keys = [request_key("192.0.2.1", 1, i, AUTH, "a") for i in range(32)]
    for i, key in enumerate(a_keys):
        answered(cache, key, REPLY, 10.0 + i / 100)
    assert [cache.known(key, 11.0) for key in a_keys] == [Cached(REPLY)] * 32
    assert [cache.known(key, 11.0) for key in b_keys[:2]] == [None, None]
    assert cache.known(b_keys[-1], 11.0) == Cached(big)


@pytest.mark.parametrize(("ttl", "max_entries"), [(0.0, 10), (-1.0, 10), (30.0, 0)])
def test_nonsense_limits_are_refused(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        DuplicateCache([NAS], ttl=ttl, max_entries=max_entries)


def test_remembered_requests_are_not_walked_by_the_garbage_collector() -> None:
    import gc

    cache = DuplicateCache([NAS])
    for port in range(100):
        key = request_key("192.0.2.1", port, 7, AUTH, NAS)
        cache.begin(key, 0.0)
        if port % 2:
            cache.finish(key, b"reply", 0.0)
    gc.collect()
    # Tens of thousands of entries live for the whole window: were the collector to keep
    # tracking them, each of its passes over the older generations would walk them all.
    items = [item for share in cache._shares.values() for item in share.entries.items()]
    assert len(items) == 100
    assert not [item for item in items if gc.is_tracked(item[0]) or gc.is_tracked(item[1])]


def test_the_whole_window_is_kept_at_six_thousand_requests_a_second() -> None:
    # SPEC §4: a copy within 30 s gets the cached reply. At 6,000 requests a second a cache
    # of 65,536 had forgotten the first after 11 s, and its copy was decided and counted again.
    cache = DuplicateCache([NAS])
    rate = 6_000
    first = request_key("192.0.2.1", 1000, 0, AUTH, NAS)
    cache.begin(first, 0.0)
    cache.finish(first, REPLY, 0.0)
    for n in range(1, 29 * rate):
        key = request_key("192.0.2.1", 1000 + n // 256 % 60000, n % 256, n.to_bytes(16, "big"), NAS)
        cache.begin(key, n / rate)
        cache.finish(key, REPLY, n / rate)
    assert cache.begin(first, 29.5) == Cached(REPLY)


def test_keys_that_differ_only_in_where_one_part_ends_stay_apart() -> None:
    cache = DuplicateCache([NAS])
    one = request_key("192.0.2.1", 40000, 7, AUTH, NAS)
    other = request_key("192.0.2.1" + "\x00", 40000, 7, AUTH[:15], NAS)
    cache.begin(one, 0.0)
    cache.finish(one, REPLY, 0.0)
    assert cache.begin(other, 1.0) is NEW


def test_asking_about_a_request_records_nothing_and_evicts_nothing() -> None:
    # A flooding client's datagrams are looked up, not admitted: they must not push other
    # clients' answers out of a full cache.
    cache = DuplicateCache([NAS], max_entries=2)
    kept = [request_key("192.0.2.9", port, 1, AUTH, NAS) for port in (1, 2)]
    for key in kept:
        cache.begin(key, 0.0)
        cache.finish(key, REPLY, 0.0)
    for port in range(100, 200):
        assert cache.known(request_key("192.0.2.66", port, 1, AUTH, NAS), 1.0) is None
    assert [cache.known(key, 1.0) for key in kept] == [Cached(REPLY), Cached(REPLY)]
    cache.begin(KEY, 1.0)
    assert cache.known(KEY, 2.0) is IN_PROGRESS


def test_an_empty_reply_is_taken_as_none_sent() -> None:
    cache = DuplicateCache([NAS])
    cache.begin(KEY, 0.0)
    cache.finish(KEY, b"", 0.0)
    assert cache.begin(KEY, 1.0) is NEW


def test_large_replies_are_bounded_by_bytes_not_only_by_entries() -> None:
    # A client can have each reply carry 4 KB of its own Proxy-State back.
    cache = DuplicateCache([NAS], max_bytes=100_000)
    big = b"\x02" + bytes(4_095)
    keys = [request_key("192.0.2.1", port, 1, AUTH, NAS) for port in range(1, 101)]
    for key in keys:
        cache.begin(key, 0.0)
        cache.finish(key, big, 0.0)
    assert 20 <= len(cache) <= 24  # 100,000 bytes of 4 KB entries
    assert cache.begin(keys[-1], 1.0) == Cached(big)  # the youngest stay
    assert cache.begin(keys[0], 1.0) is NEW  # the oldest went first


# One share per client


def held(cache: DuplicateCache) -> int:
    """The bytes the entries take, counted from the entries themselves."""
    return sum(
        len(key) + len(entry) + _ENTRY_OVERHEAD
        for share in cache._shares.values()
        for key, entry in share.entries.items()
    )


def answered(cache: DuplicateCache, key: DedupKey, reply: bytes, now: float) -> None:
    assert cache.begin(key, now) is NEW
    cache.finish(key, reply, now)


# What a flooding client can send: any address (even the victim's own), port, identifier and
# authenticator, replies of any size a client's Proxy-State can make (up to 4 KB), requests left
# in progress or answered or dropped, and resends, at any moment of the window.
_addresses = st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "10.0.0.7"])
_flood_keys = st.builds(
    DedupKey,
    _addresses,
    st.integers(0, 65535),
    st.integers(0, 255),
    st.binary(min_size=16, max_size=16),
    st.just("flood"),
    # Few digests, so that a flood also sends other bytes under keys it has used.
    digest=st.sampled_from([bytes(16), b"\x01" * 16]),
)
_replies = st.one_of(st.none(), st.integers(20, 4096).map(lambda n: b"\x02" + bytes(n - 1)))
_flood = st.lists(st.tuples(_flood_keys, _replies, st.floats(0.0, 29.0)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(flood=_flood, max_entries=st.integers(4, 64), max_bytes=st.integers(9_000, 200_000))
def test_a_client_filling_its_share_never_pushes_out_another_clients_entry(
    flood: list[tuple[DedupKey, bytes | None, float]], max_entries: int, max_bytes: int
) -> None:
    # SPEC §4: another NAS's retransmission within 30 s gets its cached answer, however many
    # requests one client (anyone with its shared secret) sends meanwhile. (Each share has
    # room for the victim's two entries: its own third would push out its first.)
    cache = DuplicateCache(["victim", "flood"], max_entries=max_entries, max_bytes=max_bytes)
    answered(cache, KEY._replace(client="victim"), REPLY, 0.0)
    waiting = KEY._replace(port=40001, client="victim")
    assert cache.begin(waiting, 0.0) is NEW
    for key, reply, now in sorted(flood, key=lambda item: item[2]):
        if cache.begin(key, now) is NEW:
            cache.finish(key, reply, now)
        assert len(cache) <= max_entries
        assert held(cache) <= max_bytes
    assert cache.begin(KEY._replace(client="victim"), 29.5) == Cached(REPLY)
    assert cache.begin(waiting, 29.5) is IN_PROGRESS


# A request now and then, or a burst; or a pause past the window, after which every entry of
# the shares still asked about expires.
_gaps = st.sampled_from([0.0, 0.0, 0.0, 0.001, 31.0])


@settings(max_examples=100, deadline=None)
@given(
    clients=st.integers(1, 40),
    requests=st.lists(
        st.tuples(st.integers(0, 39), st.integers(0, 65535), st.integers(20, 4096), _gaps),
        max_size=400,
    ),
)
def test_the_whole_cache_stays_within_its_bounds_however_many_clients(
    clients: int, requests: list[tuple[int, int, int, float]]
) -> None:
    names = [f"nas-{n}" for n in range(clients)]
    cache = DuplicateCache(names, max_entries=120, max_bytes=200_000)
    share_entries, share_bytes = cache.share_limits()
    assert share_entries * clients <= 120
    assert share_bytes * clients <= 200_000
    now = 0.0
    for n, (client, port, size, gap) in enumerate(requests):
        now += gap
        key = request_key(
            "192.0.2.1", port, n % 256, n.to_bytes(16, "big"), names[client % clients]
        )
        if cache.begin(key, now) is NEW:
            cache.finish(key, b"\x02" + bytes(size - 1), now)
        assert len(cache) <= 120
        assert held(cache) <= 200_000


def test_the_limits_are_split_equally_between_the_clients() -> None:
    cache = DuplicateCache(["a", "b", "c"], max_entries=3_000, max_bytes=30_000_000)
    assert cache.share_limits() == (1_000, 10_000_000)
    assert DuplicateCache(["a"]).share_limits() == (196_608, DEFAULT_MAX_BYTES)
    # However many clients, a share holds one entry at least.
    assert DuplicateCache([str(n) for n in range(100)], max_entries=10).share_limits()[0] == 1


def test_a_busy_client_uses_the_room_others_leave_and_gives_it_back_first() -> None:
    cache = DuplicateCache(["a", "b"], max_entries=4)  # a fair part of two entries each
    a_keys = [request_key("192.0.2.1", 40000, i, AUTH, "a") for i in range(4)]
    for i, key in enumerate(a_keys):
        answered(cache, key, REPLY, float(i))
    assert [cache.known(key, 4.0) for key in a_keys] == [Cached(REPLY)] * 4  # b sends nothing
    b_keys = [request_key("192.0.2.2", 40000, i, AUTH, "b") for i in range(3)]
    answered(cache, b_keys[0], REPLY, 5.0)
    answered(cache, b_keys[1], REPLY, 6.0)
    # a was over its part: its two oldest made room for b's.
    assert [cache.known(key, 7.0) for key in a_keys] == [None, None, Cached(REPLY), Cached(REPLY)]
    # Both at their part now: b's third request pushes out b's own oldest, not a's.
    answered(cache, b_keys[2], REPLY, 7.0)
    assert cache.known(b_keys[0], 8.0) is None
    assert [cache.known(key, 8.0) for key in (*a_keys[2:], *b_keys[1:])] == [Cached(REPLY)] * 4


def test_the_same_datagram_from_another_client_is_another_request() -> None:
    # An address that moved to another client on reload: the answer was signed with the
    # other client's secret.
    cache = DuplicateCache(["a", "b"])
    answered(cache, KEY._replace(client="a"), REPLY, 0.0)
    assert cache.begin(KEY._replace(client="b"), 1.0) is NEW


def test_a_client_not_configured_has_no_share() -> None:
    cache = DuplicateCache(["a"])
    with pytest.raises(KeyError):
        cache.begin(KEY._replace(client="b"), 0.0)
    assert cache.known(KEY._replace(client="b"), 0.0) is None
    cache.finish(KEY._replace(client="b"), REPLY, 0.0)
    assert len(cache) == 0


def test_reloading_the_clients_keeps_the_kept_ones_and_resizes_the_shares() -> None:
    cache = DuplicateCache(["a", "b"], max_entries=8)
    a_keys = [request_key("192.0.2.1", 40000, i, AUTH, "a") for i in range(4)]
    for i, key in enumerate(a_keys):
        answered(cache, key, REPLY, float(i))
    b_key = KEY._replace(client="b")
    assert cache.begin(b_key, 4.0) is NEW  # in progress across the reload
    cache.set_clients(["a", "c", "d", "e"])
    assert cache.share_limits()[0] == 2
    # The cache has room: a keeps all four, beyond its new part, until others need the room.
    assert [cache.known(key, 5.0) for key in a_keys] == [Cached(REPLY)] * 4
    # b is gone: its request in progress stores nothing when it is finished.
    cache.finish(b_key, REPLY, 5.0)
    assert cache.known(b_key, 5.0) is None
    assert len(cache) == 4
    for n, client in enumerate("cde"):
        answered(cache, KEY._replace(client=client), REPLY, 6.0 + n)
    for client in "cde":
        answered(cache, KEY._replace(client=client, port=40001), REPLY, 9.0)
    # Ten for eight places: a, furthest over its part, gave up its two oldest.
    assert [cache.known(key, 10.0) for key in a_keys] == [None, None, Cached(REPLY), Cached(REPLY)]
    assert len(cache) == 8
