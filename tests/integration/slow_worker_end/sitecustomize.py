"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): the last steps of a worker's stop, which take microseconds in a real one, take half a
second each, so that a test's repeated stop signal lands in them rather than by luck. A worker's
event loop waits after closing its wakeup socket (asyncio then still has the signals it was
given), and the worker waits after its loop has ended. Nothing else changes."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import time
from typing import Any

WAIT_S = 0.5

_loop_class = asyncio.selector_events.BaseSelectorEventLoop
_close_self_pipe = _loop_class._close_self_pipe  # type: ignore[attr-defined]
_run = asyncio.run


def _close_self_pipe_slowly(self: asyncio.selector_events.BaseSelectorEventLoop) -> None:
    _close_self_pipe(self)
    time.sleep(WAIT_S)


def _run_then_wait(*args: Any, **kwargs: Any) -> Any:
    result = _run(*args, **kwargs)
    time.sleep(WAIT_S)
    return result


_loop_class._close_self_pipe = _close_self_pipe_slowly  # type: ignore[attr-defined]
asyncio.run = _run_then_wait
