"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): its datagram transports cannot pause, as on Python 3.11.2 (Debian 12's), where
asyncio's base class raises NotImplementedError. Nothing else changes."""

from __future__ import annotations

import asyncio.selector_events


def _cannot_pause(self: asyncio.BaseTransport) -> None:
    raise NotImplementedError


asyncio.selector_events._SelectorDatagramTransport.pause_reading = _cannot_pause  # type: ignore[attr-defined]
