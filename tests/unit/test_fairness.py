"""The hash pool serves clients in turn, so a flood from one does not starve another."""

from __future__ import annotations

import os
import threading
import time

from radiusd.fairness import FairPool


def test_a_flooding_client_does_not_starve_another() -> None:
    order: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work(job: tuple[str, int]) -> None:
        time.sleep(0.002)
        with lock:
            order.append(job)

    pool: FairPool[tuple[str, int]] = FairPool(work, threads=2, queue_limit=10_000)
    for number in range(500):
        assert pool.submit("flood", ("flood", number))
    assert pool.submit("quiet", ("quiet", 0))
    pool.shutdown()
    position = order.index(("quiet", 0))
    # Behind at most the jobs already running plus one turn of the flooding client.
    assert position <= 4, position
    assert len(order) == 501


def test_a_full_client_queue_refuses_more_but_others_still_queue() -> None:
    release = threading.Event()
    pool: FairPool[int] = FairPool(lambda _job: release.wait(5), threads=1, queue_limit=3)
    accepted = [pool.submit("flood", n) for n in range(10)]
    # One job is taken by the thread, three wait; the rest are refused.
    assert accepted.count(True) in (3, 4)
    assert accepted[-1] is False
    # The worker asks this before decoding a datagram, to drop a flood cheaply.
    assert pool.full("flood")
    assert not pool.full("other")
    assert pool.submit("other", 99)
    release.set()
    pool.shutdown()
    assert not pool.full("flood")


def test_a_worker_hashes_on_as_many_threads_as_it_has_cores() -> None:
    from radiusd.worker import hash_threads

    cores = os.sched_getaffinity(0)
    try:
        # One core still gets two threads, so a slow database read never idles the core.
        os.sched_setaffinity(0, {min(cores)})
        assert hash_threads() == 2
    finally:
        os.sched_setaffinity(0, cores)
    # Every core it may use, whatever the number of workers: one NAS port reaches one worker.
    assert hash_threads() == min(16, max(2, len(cores)))
