"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): its duplicate cache holds 4 MB in all instead of 64, so that a test fills it with two
thousand datagrams of 4 KB rather than sixteen thousand. Nothing else changes."""

from __future__ import annotations

from typing import Any

import radiusd.dedup

SMALL_MAX_BYTES = 4 * 1024 * 1024
_init = radiusd.dedup.DuplicateCache.__init__


def _small(self: radiusd.dedup.DuplicateCache, *args: Any, **kwargs: Any) -> None:
    kwargs.setdefault("max_bytes", SMALL_MAX_BYTES)
    _init(self, *args, **kwargs)


radiusd.dedup.DuplicateCache.__init__ = _small  # type: ignore[method-assign]
