"""Turns on the PostgreSQL test cluster between the processes that run tests at once.

README's test command runs the suite in two processes (pytest-xdist), and a developer may run
a second suite beside it. Most tests share the cluster, each on a database of its own; the few
that stop it (marked ``stops_postgresql``) must have it alone, or every test using it in the
other process fails on a refused connection. Each test therefore holds a shared turn, and those
that stop the cluster an exclusive one.

The turns are POSIX record locks on two bytes of one file: byte 0 is a gate taken on the way
in, so that a test waiting for the cluster alone is not overtaken forever by the other
process's shared turns; byte 1 is the turn itself. The kernel releases both when a process
dies, so a killed run leaves no turn held.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_GATE, _TURN = 0, 1
LOCK_FILE = Path(tempfile.gettempdir()) / f"otpradius-tests-postgresql-{os.getuid()}.lock"


class ClusterTurns:
    """This process's turns on the cluster."""

    def __init__(self, path: Path = LOCK_FILE) -> None:
        self.path = path
        self.alone = False
        self._fd: int | None = None

    @contextmanager
    def turn(self, *, alone: bool) -> Iterator[None]:
        """Hold the cluster, shared with other tests or ``alone``, until the block ends."""
        if self._fd is None:
            # One descriptor for the process's life: POSIX locks are dropped when the
            # process closes any descriptor of the file.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fd = self._fd
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, _GATE)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX if alone else fcntl.LOCK_SH, 1, _TURN)
        except BaseException:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _GATE)
            raise
        if not alone:
            # A test alone keeps the gate until it is done, so that no shared turn begins
            # while it waits for those already running or holds the cluster itself.
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _GATE)
        self.alone = alone
        try:
            yield
        finally:
            self.alone = False
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _TURN)
            if alone:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, _GATE)


TURNS = ClusterTurns()
