"""The client list the supervisor checked on SIGHUP, handed to its workers in shared memory.

Each worker used to read the configuration file again on the SIGHUP the supervisor passed
on. A file edited once more in those milliseconds then gave the workers a client list the
supervisor had not checked or logged, and two workers could serve different lists. Now the
supervisor reads and checks the file once and publishes the result here, in an anonymous
mapping made before the workers are forked, so only they can read it.
"""

from __future__ import annotations

import mmap
import pickle
import struct

from otpcore.client_config import ClientConfig
from otpcore.errors import ConfigError

# Room for the pickled [[clients]]: some 150,000 entries. A larger list is refused at reload.
CAPACITY = 8 * 1024 * 1024
# Generation (odd while the supervisor writes) and the length of the pickle that follows.
_HEADER = struct.Struct("QQ")
# Reads of a list the supervisor is writing before giving up; a write takes microseconds.
_TRIES = 100_000


class ClientBox:
    """One published client list, written by the supervisor, read by every worker."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        # Anonymous and shared: it exists only in this process and the ones it forks, and
        # takes memory only for the pages written.
        self._map = mmap.mmap(-1, _HEADER.size + capacity)
        self._capacity = capacity

    def publish(self, clients: tuple[ClientConfig, ...]) -> None:
        """Make ``clients`` the list the workers take at their next SIGHUP."""
        data = pickle.dumps(clients, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > self._capacity:
            raise ConfigError(f"[[clients]]: too many entries to reload ({len(clients)})")
        generation, _ = _HEADER.unpack_from(self._map, 0)
        # A worker reading meanwhile sees an odd or changed generation and reads again.
        _HEADER.pack_into(self._map, 0, generation + 1, 0)
        self._map[_HEADER.size : _HEADER.size + len(data)] = data
        _HEADER.pack_into(self._map, 0, generation + 2, len(data))

    def take(self, after: int) -> tuple[int, tuple[ClientConfig, ...]] | None:
        """The list published after generation ``after`` and its generation; None if none."""
        for _ in range(_TRIES):
            generation, length = _HEADER.unpack_from(self._map, 0)
            if generation <= after:
                return None
            if generation % 2:
                continue  # the supervisor is writing it (microseconds)
            data = self._map[_HEADER.size : _HEADER.size + length]
            if _HEADER.unpack_from(self._map, 0)[0] == generation:
                clients: tuple[ClientConfig, ...] = pickle.loads(data)  # noqa: S301 - our own
                return generation, clients
        # A supervisor that died mid-write (the worker follows it shortly).
        return None
