"""Imported at start by a daemon run with this folder first on PYTHONPATH (and by the workers it
forks): a password check still queued half a second after its request arrived is dropped, not
after 20 s, so that a test shows the drop with a queue of a few hundred. Nothing else changes."""

from __future__ import annotations

import radiusd.worker

radiusd.worker.HASH_WAIT_LIMIT_S = 0.5
