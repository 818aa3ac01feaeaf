"""The hash pool and the database thread's queue serve clients in turn, so a flood from one
does not starve another."""

from __future__ import annotations

import os
import threading

from hypothesis import given
from hypothesis import strategies as st

from radiusd.fairness import FairPool, FairQueue


def test_a_flooding_client_does_not_starve_another() -> None:
    order: list[tuple[str, int]] = []
    lock = threading.Lock()
    # Nothing finishes before every job is queued: on a busy host the threads had finished a
    # few of the flood's while the 501 were still being submitted, and the quiet one's place
    # counted those as well.
    queued = threading.Event()

    def work(job: tuple[str, int]) -> None:
        queued.wait(5)
        with lock:
            order.append(job)

    pool: FairPool[tuple[str, int]] = FairPool(work, threads=2, queue_limit=10_000)
    for number in range(500):
        assert pool.submit("flood", ("flood", number))
    assert pool.submit("quiet", ("quiet", 0))
    queued.set()
    pool.shutdown()
    position = order.index(("quiet", 0))
    # Behind at most the jobs already running (one a thread) plus one turn of the flood.
    assert position <= 3, position
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


def test_a_batch_takes_the_quiet_clients_job_before_the_floods_backlog() -> None:
    queue: FairQueue[tuple[str, int]] = FairQueue(10_000)
    for number in range(2_000):
        assert queue.push("flood", ("flood", number))
    assert queue.push("quiet", ("quiet", 0))
    first = queue.take(512)
    assert ("quiet", 0) in first[:2]
    assert [job for job in first if job[0] == "flood"] == [("flood", n) for n in range(511)]
    assert len(queue) == 2_001 - 512


def test_a_full_client_queue_refuses_more_and_frees_room_as_batches_take_it() -> None:
    queue: FairQueue[int] = FairQueue(3)
    assert [queue.push("flood", n) for n in range(5)] == [True, True, True, False, False]
    assert queue.full("flood")
    assert not queue.full("quiet")
    assert queue.push("quiet", 99)
    assert queue.take(2) == [0, 99]
    assert not queue.full("flood")
    assert queue.push("flood", 5)
    assert queue.take(10) == [1, 2, 5]
    assert len(queue) == 0


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.booleans()), max_size=200),
       st.integers(min_value=1, max_value=7))  # fmt: skip
def test_every_job_is_taken_once_in_order_and_no_client_twice_while_another_waits(
    steps: list[tuple[str, bool]], batch: int
) -> None:
    queue: FairQueue[tuple[str, int]] = FairQueue(5)
    waiting: dict[str, list[tuple[str, int]]] = {client: [] for client in "abcd"}
    for number, (client, take) in enumerate(steps):
        if take:
            before = {c for c, jobs in waiting.items() if jobs}
            got = queue.take(batch)
            assert len(got) == min(batch, sum(len(jobs) for jobs in waiting.values()))
            for job in got:
                assert waiting[job[0]].pop(0) == job  # each client's oldest first
            given_to = [job[0] for job in got]
            if any(given_to.count(c) > 1 for c in before):
                assert all(c in given_to for c in before)
        elif queue.push(client, (client, number)):
            waiting[client].append((client, number))
        else:
            assert len(waiting[client]) == 5
        assert len(queue) == sum(len(jobs) for jobs in waiting.values())
