"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): each client may have 10 requests waiting for the database thread instead of 5,000, so
that a test fills its queue with a few dozen datagrams. Nothing else changes."""

from __future__ import annotations

import radiusd.worker

radiusd.worker.INBOX_LIMIT = 10
