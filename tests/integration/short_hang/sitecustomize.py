"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): the supervisor takes a worker for hung after 2 s without a heartbeat instead of 10, so
that a test pauses the host for seconds rather than for tens of them. Nothing else changes."""

from __future__ import annotations

import radiusd.supervisor

radiusd.supervisor.HUNG_S = 2.0
