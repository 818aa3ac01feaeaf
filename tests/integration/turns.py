"""Another process holding the writers' turn of a SQLite database (``<database>-writer``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Takes the turn, says so, and lets go when told or after argv[2] seconds (so that no failure
# can leave a test waiting for ever).
_HOLDER = """
import fcntl, os, select, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
"""


@contextmanager
def turn_held(lock: Path | str, seconds: float = 30.0) -> Iterator[subprocess.Popen[str]]:
    """A process holding the turn on ``lock`` until ``let_go`` (or ``seconds``)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def let_go(holder: subprocess.Popen[str]) -> None:
    """Make the holder release the turn, and wait until it has."""
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(10)
