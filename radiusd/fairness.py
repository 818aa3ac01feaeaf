"""Work shared fairly between clients: password hashing, and the database thread's batches.

A flood from one NAS (or one spoofed source with its secret) must not starve the others:
jobs wait in one queue per client and are taken from the clients in turn, so a client with
ten thousand requests queued delays another client's next request by at most one job per
busy client (one batch, for the database thread). Each client's queue is bounded; a job
beyond the bound is refused at once (dropped unanswered: the NAS retries or fails over).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")

DEFAULT_QUEUE_LIMIT = 2000


class FairQueue(Generic[Job]):
    """Jobs queued per client and taken in turn; not thread-safe (FairPool locks around it)."""

    def __init__(self, queue_limit: int) -> None:
        self._limit = queue_limit
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def full(self, client: str) -> bool:
        """True when ``client``'s queue is at its bound (a job pushed now would be refused)."""
        queue = self._queues.get(client)
        return queue is not None and len(queue) >= self._limit

    def push(self, client: str, job: Job) -> bool:
        """Queue a job for ``client``; False (not queued) when that client's queue is full."""
        queue = self._queues.get(client)
        if queue is None:
            queue = self._queues[client] = deque()
        elif len(queue) >= self._limit:
            return False
        queue.append(job)
        self._count += 1
        return True

    def take(self, most: int) -> list[Job]:
        """Up to ``most`` jobs: one from each client in turn, each client's oldest first."""
        taken: list[Job] = []
        if len(self._queues) == 1:
            # One client (the usual case): its queue in order, without turns to take.
            client, queue = next(iter(self._queues.items()))
            taken = [queue.popleft() for _ in range(min(most, len(queue)))]
            if not queue:
                del self._queues[client]
        while self._queues and len(taken) < most:
            # The first client in line gives one job and goes to the back of the line.
            client, queue = next(iter(self._queues.items()))
            taken.append(queue.popleft())
            if queue:
                self._queues.move_to_end(client)
            else:
                del self._queues[client]
        self._count -= len(taken)
        return taken


class FairPool(Generic[Job]):
    """Threads that run ``work(job)`` for jobs queued per client, round robin across clients."""

    def __init__(
        self,
        work: Callable[[Job], None],
        threads: int,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        name: str = "hash",
    ) -> None:
        self._work = work
        self._queue: FairQueue[Job] = FairQueue(queue_limit)
        self._ready = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, client: str, job: Job) -> bool:
        """Queue a job for ``client``; False (not queued) when that client's queue is full."""
        with self._ready:
            if not self._queue.push(client, job):
                return False
            self._ready.notify()
        return True

    def full(self, client: str) -> bool:
        """True when ``client``'s queue is at its bound (a job submitted now would be refused)."""
        with self._ready:
            return self._queue.full(client)

    def _take(self) -> Job | None:
        with self._ready:
            while not self._queue:
                if self._closing:
                    return None
                self._ready.wait()
            (job,) = self._queue.take(1)
            return job

    def _run(self) -> None:
        while (job := self._take()) is not None:
            self._work(job)

    def shutdown(self) -> None:
        """Finish the queued jobs, then stop the threads."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
