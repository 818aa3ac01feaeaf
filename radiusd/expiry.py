"""The daily warning of tokens nearing expiry, logged by the first worker only."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from otpcore.app import App
from otpcore.errors import OtpError
from otpcore.logfields import field
from otpcore.views import TokenListing

log = logging.getLogger("otpradius.server")

EXPIRY_INTERVAL_S = 24 * 3600.0
# How long after its expiry a token is still named by the first check a worker makes; later
# checks name the tokens that expired since the last check that ran.
EXPIRED_REPORTED_FOR = timedelta(days=1)
# Tokens a check names a line each; the rest it counts in one line. A bank's tokens bought in
# one lot expire on one day: a line for each of a million would bury every other line of the
# log, every day for warn_days days.
EXPIRY_LINES_MAX = 1000


class ExpiryWatch:
    """Logs the tokens expiring within ``[tokens] warn_days``, at start and then once a day."""

    def __init__(self, app: App, warn_days: int) -> None:
        self.app = app
        self.warn_days = warn_days
        # Its own thread: the check may wait for the database as long as any admin command,
        # and must hold up neither the requests nor the health probe meanwhile.
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="expiry")
        # The instant of the last check that ran. Checks lie a little over a day apart (the
        # next one starts a day after this one ended) and one may fail: a look-back of one
        # day missed a token that expired in the gap, and never said it expired.
        self.checked: datetime | None = None

    async def run(self) -> None:
        """Check now, then once an interval, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self.thread, self.warn_expiring_tokens)
            except Exception as exc:  # a check that failed is tried again tomorrow
                log.error("expiry check failed error=%s", type(exc).__name__)
            await asyncio.sleep(EXPIRY_INTERVAL_S)

    def warn_expiring_tokens(self) -> None:
        """Log a warning line for each token expiring within ``warn_days`` (the first
        ``EXPIRY_LINES_MAX`` of them, soonest first; one line counts the rest)."""
        if self.warn_days <= 0:
            return
        now = self.app.clock()
        since = now - EXPIRED_REPORTED_FOR
        if self.checked is not None:
            since = min(self.checked, now)  # a clock stepped back hides no token still ahead
        # Said once, at the first check after it expires, not every day after: a warning
        # repeated for each token that ever expired would bury the ones ahead.
        try:
            named, more = self.app.admin("radiusd").expiring_tokens(
                since, self.warn_days, EXPIRY_LINES_MAX
            )
        except OtpError as exc:
            log.error("expiry check failed: %s", exc)
            return
        finally:
            self.app.store.dispose()  # a day until the next: hold no connection meanwhile
        for token in named:
            if token.expires is not None:  # always set within a window of expiry
                self._name(token, token.expires, now)
        if more:
            log.warning("token expiring more=%d: otpctl token list --expiring-within %d "
                        "names them all", more, self.warn_days)  # fmt: skip
        self.checked = now

    def _name(self, token: TokenListing, expires: datetime, now: datetime) -> None:
        left = expires - now
        state = "expired" if left <= timedelta(0) else f"expires_in_days={left.days}"
        # To the second: an operator needs no microseconds, and six digits of them in a log
        # line read like a one-time password to anyone grepping for one.
        users = ",".join(field(login) for login in token.users) or "-"
        log.warning("token expiring serial=%s expires=%s %s users=%s", field(token.serial),
                    expires.isoformat(timespec="seconds"), state, users)  # fmt: skip

    def shutdown(self) -> None:
        """Let the thread go without waiting: the check writes nothing."""
        self.thread.shutdown(wait=False, cancel_futures=True)
