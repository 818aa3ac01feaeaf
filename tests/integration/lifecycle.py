"""Building state through the public API (Admin and Authenticator) for the integration tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from otpcore.app import App
from otpcore.attempts import AuthOutcome, AuthRequest
from otpcore.model import Algorithm, InputMode, Reason, Result, TokenKind, UserClass
from otpcore.ports import FrozenClock
from otpcore.token_csv import TokenSpec
from otpcore.totp import hotp, time_step
from otpcore.views import TokenListing, UserView

SERIAL = "23456789"
SECRET = bytes(range(1, 21))
PASSWORD = "correct horse 7"
CONFIRMATION = "battery staple 9"
ADMIN = "chiroadm"


def import_token(
    app: App,
    serial: str = SERIAL,
    *,
    secret: bytes = SECRET,
    period: int = 60,
    digits: int = 6,
    algorithm: Algorithm = Algorithm.SHA1,
    expires: datetime | None = None,
) -> None:
    spec = TokenSpec(serial, secret, TokenKind.HARDWARE, algorithm, digits, period, expires)
    app.admin().import_tokens([spec])


def add_user(
    app: App,
    login: str,
    user_class: UserClass = UserClass.GENERAL,
    password: str = PASSWORD,
) -> UserView:
    confirmation = CONFIRMATION if user_class is not UserClass.GENERAL else None
    return app.admin().add_user(login, login.title(), user_class, password, confirmation)


def add_admin(app: App, login: str = ADMIN) -> None:
    add_user(app, login, UserClass.ADMIN)


def code(
    clock: FrozenClock,
    *,
    secret: bytes = SECRET,
    period: int = 60,
    digits: int = 6,
    algorithm: Algorithm = Algorithm.SHA1,
    offset: int = 0,
) -> str:
    """What the token shows now (``offset`` steps fast or slow)."""
    return hotp(secret, time_step(clock(), period) + offset, digits, algorithm)


def wrong_code(clock: FrozenClock, **kwargs: object) -> str:
    """A six-digit code the token does not show within a window of 3 steps."""
    shown = {code(clock, offset=o, **kwargs) for o in range(-3, 4)}  # type: ignore[arg-type]
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in shown)


def next_step(clock: FrozenClock, period: int = 60) -> None:
    """Move the clock to the next time step, so a fresh code is shown."""
    clock.advance(period)


def login(
    app: App,
    user: str,
    text: str,
    mode: InputMode = InputMode.SPLIT,
    state: bytes | None = None,
    request_id: bytes | None = None,
) -> AuthOutcome:
    return app.authenticator().authenticate(AuthRequest(user, text, mode, state, request_id))


def activated(app: App, clock: FrozenClock, user: str, serial: str = SERIAL, **kw: object) -> None:
    """Make ``user`` active on ``serial`` through issue and activation, then move a step on."""
    app.admin().issue(user, clock().date())
    outcome = app.authenticator().activate(user, serial, code(clock, **kw))  # type: ignore[arg-type]
    assert (outcome.result, outcome.reason) == (Result.ACCEPT, Reason.ACTIVATED)
    period = kw.get("period", 60)
    assert isinstance(period, int)
    clock.advance(period)


def token(app: App, serial: str = SERIAL) -> TokenListing:
    (found,) = [t for t in app.admin().tokens() if t.serial == serial]
    return found


def user(app: App, login_name: str) -> UserView:
    return app.admin().user(login_name)


def just_before(instant: datetime) -> datetime:
    return instant - timedelta(microseconds=1)


IMPORTER = "import"  # the name of the thread import_beside_a_batch runs the import in


def import_beside_a_batch(
    run_import: Callable[[], object],
    commit_batch: Callable[[], object],
    paused: threading.Event,
    go_on: threading.Event,
) -> dict[str, object]:
    """Run an import until it sets ``paused``, commit a batch beside it, then set ``go_on``;
    what each returned, or the exception it raised."""
    results: dict[str, object] = {}

    def run(name: str, action: Callable[[], object]) -> None:
        try:
            results[name] = action()
        except Exception as exc:
            results[name] = exc

    importer = threading.Thread(target=run, args=("import", run_import), name=IMPORTER)
    importer.start()
    assert paused.wait(30)
    committer = threading.Thread(target=run, args=("batch", commit_batch))
    committer.start()
    go_on.set()
    importer.join(60)
    committer.join(60)
    return results
