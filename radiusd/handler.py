"""One datagram from a known client to one answer: checks of SPEC §4, then otpcore's decision.

Runs off the packet loop (it may hash a password and talk to the database). It never raises:
whatever goes wrong ends as an ``Answer`` without a reply (a drop) and a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from otpcore.config import ClientConfig
from otpcore.errors import OtpError, Unavailable
from otpcore.model import Reason, Result
from otpcore.service import AuthOutcome, AuthRequest
from radiusd.logsetup import field
from radiusd.messages import reply_text
from radiusd.packets import Codes, MalformedPacket, Request, decode_request, encode_reply

log = logging.getLogger("otpradius.auth")

_CODES = {
    Result.ACCEPT: Codes.ACCESS_ACCEPT,
    Result.REJECT: Codes.ACCESS_REJECT,
    Result.CHALLENGE: Codes.ACCESS_CHALLENGE,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What to send back (None: drop), whether it is a Reject, and why it was dropped."""

    reply: bytes | None
    reject: bool = False
    drop_reason: str | None = None
    unavailable: bool = False


Authenticate = Callable[[AuthRequest], AuthOutcome]


class RequestHandler:
    """Turns Access-Requests into otpcore calls and outcomes into signed replies."""

    def __init__(self, authenticate: Authenticate, language: str) -> None:
        self.authenticate = authenticate
        self.language = language

    def handle(self, data: bytes, client: ClientConfig, source: str) -> Answer:
        """Decode, check and answer one datagram from ``client``."""
        try:
            request = decode_request(data, client.secret)
        except MalformedPacket as exc:
            return Answer(None, drop_reason=f"malformed:{exc.reason}")
        refused = admission_problem(request, client)
        if refused is not None:
            return Answer(None, drop_reason=refused)
        if request.code is Codes.STATUS_SERVER:
            return Answer(encode_reply(request, Codes.ACCESS_ACCEPT, client.secret))
        started = time.perf_counter()
        outcome = self._decide(request, client, source)
        if isinstance(outcome, Answer):
            return outcome
        _log_decision(outcome, client, source, started)
        return self._reply(request, client, outcome)

    def _decide(self, request: Request, client: ClientConfig, source: str) -> AuthOutcome | Answer:
        login = request.user_name
        if not login:
            return self._early(request, client, source, "", Reason.INVALID_REQUEST)
        if request.password is None:
            reason = Reason.PAP_REQUIRED if request.has_chap else Reason.INVALID_REQUEST
            return self._early(request, client, source, login, reason)
        try:
            password = request.password.decode("utf-8")
        except UnicodeDecodeError:
            return self._early(request, client, source, login, Reason.INVALID_REQUEST)
        try:
            return self.authenticate(
                AuthRequest(login, password, client.mode, request.state, request.authenticator)
            )
        except Unavailable:
            return Answer(None, drop_reason="database_unavailable", unavailable=True)
        except OtpError as exc:
            log.error("auth error=%s user=%s client=%s", type(exc).__name__, field(login),
                      field(client.name))  # fmt: skip
            return Answer(None, drop_reason="error")

    def _early(
        self, request: Request, client: ClientConfig, source: str, login: str, reason: Reason
    ) -> Answer:
        """A Reject decided from the packet alone (no user state read or changed)."""
        outcome = AuthOutcome(Result.REJECT, reason, login)
        _log_decision(outcome, client, source, time.perf_counter())
        return self._reply(request, client, outcome)

    def _reply(self, request: Request, client: ClientConfig, outcome: AuthOutcome) -> Answer:
        text = reply_text(
            self.language, outcome.result, outcome.reason, outcome.prompt, outcome.serial
        )
        code = _CODES[outcome.result]
        try:
            reply = encode_reply(request, code, client.secret, reply_message=text,
                                 state=outcome.state)  # fmt: skip
        except ValueError:
            # Echoed Proxy-State made the reply too long: answer without the message.
            try:
                reply = encode_reply(request, code, client.secret, state=outcome.state)
            except ValueError:
                return Answer(None, drop_reason="reply_too_long")
        return Answer(reply, reject=outcome.result is Result.REJECT)


def admission_problem(request: Request, client: ClientConfig) -> str | None:
    """Why a decoded request must be dropped unanswered (SPEC §4, BlastRADIUS), or None."""
    if request.has_message_authenticator and not request.message_authenticator_valid:
        return "bad_message_authenticator"
    if request.code is Codes.STATUS_SERVER:
        return None if request.has_message_authenticator else "missing_message_authenticator"
    if request.code is not Codes.ACCESS_REQUEST:
        return "unexpected_code"
    if not request.has_message_authenticator:
        if client.require_message_authenticator:
            return "missing_message_authenticator"
        if client.limit_proxy_state and request.proxy_states:
            return "proxy_state_without_message_authenticator"
    return None


def _log_decision(outcome: AuthOutcome, client: ClientConfig, source: str, started: float) -> None:
    ms = (time.perf_counter() - started) * 1000
    log.info(
        "auth result=%s reason=%s user=%s client=%s src=%s mode=%s serial=%s ms=%.1f",
        outcome.result.value,
        outcome.reason.value,
        field(outcome.login),
        field(client.name),
        source,
        client.mode.value,
        field(outcome.serial),
        ms,
    )
