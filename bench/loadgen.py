"""A UDP RADIUS load generator: prebuilt datagrams, closed loop (peak) or fixed rate (latency).

Every datagram is built before the clock starts, so the generator only sends, receives and
matches replies by (socket, identifier). Its own CPU time is reported beside the figures:
a generator that used less than its core while the server's core was busy was not the
bottleneck. A reply's latency ends when the kernel queued it on the generator's socket
(``SO_TIMESTAMPNS``), not when the generator got round to reading it: a pause of the
generator's own core is not the server's latency. When it read each reply is kept too.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class RunResult:
    """What one run measured."""

    sent: int = 0
    answered: int = 0
    lost: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # until the kernel queued the reply
    read_latencies: list[float] = field(default_factory=list)  # until the generator read it
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.answered / self.wall if self.wall else 0.0

    def percentile(self, p: float, *, as_read: bool = False) -> float:
        """A latency percentile in milliseconds (``as_read``: until the generator read it)."""
        values = self.read_latencies if as_read else self.latencies
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


# Linux's SO_TIMESTAMPNS (also the kind of its control message), which Python 3.11's socket
# module does not name.
SO_TIMESTAMPNS = 35
_STAMP = struct.Struct("@qq")  # struct timespec: seconds, nanoseconds
_STAMP_SPACE = socket.CMSG_SPACE(_STAMP.size)


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The CLOCK_REALTIME instant, in seconds, at which the kernel queued a datagram."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _STAMP.size:
            seconds, nanoseconds = _STAMP.unpack_from(data)
            return float(seconds + nanoseconds / 1e9)
    return None


def _sockets(count: int, family: int, source: str | None) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        default = "127.0.0.1" if family == socket.AF_INET else "::1"
        sock.bind((source or default, 0))
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    packets: Sequence[bytes],
    target: tuple[str, int],
    *,
    window: int = 256,
    rate: float | None = None,
    sockets: int = 128,
    timeout: float = 3.0,
    source: str | None = None,
) -> RunResult:
    """Send every packet; closed loop with ``window`` in flight, or open loop at ``rate``/s.

    Packet ``i`` goes out on socket ``i % sockets``; its identifier (byte 1) must be unique
    among the packets in flight on that socket, which holds when packets were numbered in order.
    """
    socks = _sockets(sockets, socket.AF_INET6 if ":" in target[0] else socket.AF_INET, source)
    poller = select.epoll()
    by_fd = {sock.fileno(): index for index, sock in enumerate(socks)}
    for sock in socks:
        poller.register(sock.fileno(), select.EPOLLIN)
    # When each request went out: on the monotonic clock, and on the realtime clock that the
    # kernel's receive stamps use.
    outstanding: dict[tuple[int, int], tuple[float, float]] = {}
    result = RunResult()
    total = len(packets)
    next_index = 0
    cpu0, start = _cpu(), time.perf_counter()
    last_progress = last_answer = start
    while next_index < total or outstanding:
        now = time.perf_counter()
        # Send what the window (or the schedule) allows.
        while next_index < total:
            if rate is None:
                if len(outstanding) >= window:
                    break
            elif start + next_index / rate > now:
                break
            slot = next_index % sockets
            key = (slot, packets[next_index][1])
            if key in outstanding:
                break  # its identifier is still in flight: wait for the answer
            # Read the clocks before the send: the reply can be queued (and stamped) before
            # sendto returns to us, as the answering side may run while we wait for the call.
            leaving = (time.perf_counter(), time.time())
            try:
                socks[slot].sendto(packets[next_index], target)
            except BlockingIOError:
                break
            outstanding[key] = leaving
            next_index += 1
            result.sent += 1
        wait = 0.0005 if rate is not None else 0.05
        for fd, _ in poller.poll(wait):
            sock = socks[by_fd[fd]]
            while True:
                try:
                    data, ancillary, _, _ = sock.recvmsg(4096, _STAMP_SPACE)
                except BlockingIOError:
                    break
                if len(data) < 20:
                    continue
                sent = outstanding.pop((by_fd[fd], data[1]), None)
                if sent is None:
                    continue
                result.answered += 1
                last_answer = last_progress = time.perf_counter()
                result.codes[data[0]] = result.codes.get(data[0], 0) + 1
                read_after = last_progress - sent[0]
                queued = _kernel_stamp(ancillary)
                result.read_latencies.append(read_after)
                # A realtime step during the run could make the stamp absurd: then as read.
                stamped = queued - sent[1] if queued is not None else read_after
                result.latencies.append(stamped if 0 <= stamped <= read_after else read_after)
        now = time.perf_counter()
        if outstanding and now - last_progress > timeout:
            expired = [key for key, sent in outstanding.items() if now - sent[0] > timeout]
            for key in expired:
                del outstanding[key]
            result.lost += len(expired)
            last_progress = now
    # Up to the last answer: time spent waiting out lost requests is not serving time.
    result.wall = (last_answer if result.answered else time.perf_counter()) - start
    result.cpu = _cpu() - cpu0
    for sock in socks:
        sock.close()
    poller.close()
    return result


def pin(cpu: int) -> None:
    """Run this process on one core only."""
    os.sched_setaffinity(0, {cpu})
