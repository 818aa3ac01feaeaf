"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): each client may have 10 Rejects held for the reject delay instead of 5,000, so that a
test reaches the bound with a few dozen datagrams. Nothing else changes."""

from __future__ import annotations

import radiusd.worker

radiusd.worker.HELD_LIMIT = 10
