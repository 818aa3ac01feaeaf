"""RFC 5080 duplicate cache: verdicts, expiry, eviction."""

from __future__ import annotations

import pytest

from radiusd.dedup import IN_PROGRESS, NEW, Cached, DedupKey, DuplicateCache

AUTH = bytes(range(16))
KEY = DedupKey("192.0.2.1", 40000, 7, AUTH)
REPLY = b"\x02\x07\x00\x14" + bytes(16)


def test_first_copy_is_new_and_a_copy_before_the_reply_is_in_progress() -> None:
    cache = DuplicateCache()
    assert cache.begin(KEY, 0.0) is NEW
    assert cache.begin(KEY, 1.0) is IN_PROGRESS


def test_copy_after_the_reply_gets_the_cached_bytes() -> None:
    cache = DuplicateCache()
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 1.0)
    assert cache.begin(KEY, 2.0) == Cached(REPLY)
    assert cache.begin(KEY, 3.0) == Cached(REPLY)


@pytest.mark.parametrize(
    "other",
    [
        DedupKey("192.0.2.2", 40000, 7, AUTH),
        DedupKey("192.0.2.1", 40001, 7, AUTH),
        DedupKey("192.0.2.1", 40000, 8, AUTH),
        DedupKey("192.0.2.1", 40000, 7, bytes(16)),
    ],
    ids=["address", "port", "identifier", "authenticator"],
)
def test_any_differing_key_part_makes_a_new_request(other: DedupKey) -> None:
    cache = DuplicateCache()
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 0.0)
    assert cache.begin(other, 1.0) is NEW


def test_answered_entry_expires_ttl_after_the_reply() -> None:
    cache = DuplicateCache(ttl=30.0)
    cache.begin(KEY, 0.0)
    cache.finish(KEY, REPLY, 5.0)
    assert cache.begin(KEY, 34.9) == Cached(REPLY)
    assert cache.begin(KEY, 35.0) is NEW


def test_a_request_still_being_processed_after_ttl_keeps_its_copies_dropped() -> None:
    # A write-locked database can hold a request for a minute; the NAS resends it every few
    # seconds. A copy decided beside the first would be counted again (SPEC §4).
    cache = DuplicateCache(ttl=10.0)
    cache.begin(KEY, 0.0)
    assert cache.begin(KEY, 9.9) is IN_PROGRESS
    assert cache.begin(KEY, 10.0) is IN_PROGRESS
    assert cache.begin(KEY, 65.0) is IN_PROGRESS
    cache.finish(KEY, REPLY, 70.0)
    assert cache.begin(KEY, 79.9) == Cached(REPLY)
    assert cache.begin(KEY, 80.0) is NEW


def test_finish_without_a_reply_lets_a_retransmission_be_processed() -> None:
    cache = DuplicateCache()
    cache.begin(KEY, 0.0)
    cache.finish(KEY, None, 1.0)
    assert len(cache) == 0
    assert cache.begin(KEY, 2.0) is NEW


def test_finish_after_eviction_stores_nothing() -> None:
    cache = DuplicateCache(ttl=30.0, max_entries=1)
    cache.begin(KEY, 0.0)
    cache.begin(DedupKey("192.0.2.9", 1, 1, AUTH), 1.0)
    cache.finish(KEY, REPLY, 2.0)
    assert cache.begin(KEY, 3.0) is NEW


def test_full_cache_evicts_the_oldest_entry() -> None:
    cache = DuplicateCache(max_entries=2)
    keys = [DedupKey("192.0.2.1", 40000, i, AUTH) for i in range(3)]
    for i, key in enumerate(keys):
        assert cache.begin(key, float(i)) is NEW
    assert len(cache) == 2
    assert cache.begin(keys[2], 3.0) is IN_PROGRESS
    assert cache.begin(keys[1], 3.0) is IN_PROGRESS
    assert cache.begin(keys[0], 3.0) is NEW


def test_finish_moves_an_entry_to_the_young_end() -> None:
    cache = DuplicateCache(ttl=30.0, max_entries=2)
    first, second = (DedupKey("192.0.2.1", 40000, i, AUTH) for i in range(2))
    cache.begin(first, 0.0)
    cache.begin(second, 1.0)
    cache.finish(first, REPLY, 2.0)
    # `second` is now the oldest and makes room for a third request.
    cache.begin(DedupKey("192.0.2.9", 1, 1, AUTH), 3.0)
    assert cache.begin(first, 4.0) == Cached(REPLY)
    assert cache.begin(second, 4.0) is NEW


def test_expiry_removes_every_stale_entry_at_once() -> None:
    cache = DuplicateCache(ttl=30.0)
    for i in range(100):
        key = DedupKey("192.0.2.1", 40000, i % 256, bytes([i]) * 16)
        cache.begin(key, i / 10)
        cache.finish(key, REPLY, i / 10)
    cache.begin(KEY, 100.0)
    assert len(cache) == 1


@pytest.mark.parametrize(("ttl", "max_entries"), [(0.0, 10), (-1.0, 10), (30.0, 0)])
def test_nonsense_limits_are_refused(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        DuplicateCache(ttl=ttl, max_entries=max_entries)


def test_remembered_requests_are_not_walked_by_the_garbage_collector() -> None:
    import gc

    cache = DuplicateCache()
    for port in range(100):
        key = DedupKey("192.0.2.1", port, 7, AUTH)
        cache.begin(key, 0.0)
        if port % 2:
            cache.finish(key, b"reply", 0.0)
    gc.collect()
    # Tens of thousands of entries live for the whole window: were the collector to keep
    # tracking them, each of its passes over the older generations would walk them all.
    assert not [item for item in cache._entries.items() if gc.is_tracked(item[0])
                or gc.is_tracked(item[1])]  # fmt: skip


def test_the_whole_window_is_kept_at_six_thousand_requests_a_second() -> None:
    # SPEC §4: a copy within 30 s gets the cached reply. At 6,000 requests a second a cache
    # of 65,536 had forgotten the first after 11 s, and its copy was decided and counted again.
    cache = DuplicateCache()
    rate = 6_000
    first = DedupKey("192.0.2.1", 1000, 0, AUTH)
    cache.begin(first, 0.0)
    cache.finish(first, REPLY, 0.0)
    for n in range(1, 29 * rate):
        key = DedupKey("192.0.2.1", 1000 + n // 256 % 60000, n % 256, n.to_bytes(16, "big"))
        cache.begin(key, n / rate)
        cache.finish(key, REPLY, n / rate)
    assert cache.begin(first, 29.5) == Cached(REPLY)


def test_keys_that_differ_only_in_where_one_part_ends_stay_apart() -> None:
    cache = DuplicateCache()
    one = DedupKey("192.0.2.1", 40000, 7, AUTH)
    other = DedupKey("192.0.2.1" + "\x00", 40000, 7, AUTH[:15])
    cache.begin(one, 0.0)
    cache.finish(one, REPLY, 0.0)
    assert cache.begin(other, 1.0) is NEW


def test_asking_about_a_request_records_nothing_and_evicts_nothing() -> None:
    # A flooding client's datagrams are looked up, not admitted: they must not push other
    # clients' answers out of a full cache.
    cache = DuplicateCache(max_entries=2)
    kept = [DedupKey("192.0.2.9", port, 1, AUTH) for port in (1, 2)]
    for key in kept:
        cache.begin(key, 0.0)
        cache.finish(key, REPLY, 0.0)
    for port in range(100, 200):
        assert cache.known(DedupKey("192.0.2.66", port, 1, AUTH), 1.0) is None
    assert [cache.known(key, 1.0) for key in kept] == [Cached(REPLY), Cached(REPLY)]
    cache.begin(KEY, 1.0)
    assert cache.known(KEY, 2.0) is IN_PROGRESS


def test_an_empty_reply_is_taken_as_none_sent() -> None:
    cache = DuplicateCache()
    cache.begin(KEY, 0.0)
    cache.finish(KEY, b"", 0.0)
    assert cache.begin(KEY, 1.0) is NEW


def test_large_replies_are_bounded_by_bytes_not_only_by_entries() -> None:
    # A client can have each reply carry 4 KB of its own Proxy-State back.
    cache = DuplicateCache(max_bytes=100_000)
    big = b"\x02" + bytes(4_095)
    keys = [DedupKey("192.0.2.1", port, 1, AUTH) for port in range(1, 101)]
    for key in keys:
        cache.begin(key, 0.0)
        cache.finish(key, big, 0.0)
    assert 20 <= len(cache) <= 24  # 100,000 bytes of 4 KB entries
    assert cache.begin(keys[-1], 1.0) == Cached(big)  # the youngest stay
    assert cache.begin(keys[0], 1.0) is NEW  # the oldest went first
