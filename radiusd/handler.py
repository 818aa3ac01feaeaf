"""From datagram to answer: the checks of SPEC §4 and the mapping to and from otpcore.

The steps are separate so the worker can run each where it belongs: ``admit`` and
``to_auth`` are cheap (the packet loop), deciding may hash a password (a pool thread), and
``reply`` logs the decision and signs the answer. ``handle`` chains them for one request.
Nothing here raises on any input: a bad datagram becomes an ``Answer`` without a reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from otpcore.attempts import AuthOutcome, AuthRequest
from otpcore.client_config import ClientConfig
from otpcore.errors import KeyFileError, OtpError, Unavailable
from otpcore.logfields import decision_line, field
from otpcore.model import Reason, Result
from radiusd.messages import reply_text
from radiusd.packets import Request, UnexpectedCode, decode_request, encode_reply
from radiusd.wire import Codes, MalformedPacket

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
    cause: str = ""  # why the database failed it (an Unavailable's message), for the log


def unavailable(exc: Unavailable) -> Answer:
    """A request the database did not take: dropped, with the reason for the log."""
    return Answer(None, drop_reason="database_unavailable", unavailable=True, cause=str(exc))


Authenticate = Callable[[AuthRequest], AuthOutcome]


class RequestHandler:
    """Turns Access-Requests into otpcore calls and outcomes into signed replies."""

    def __init__(self, authenticate: Authenticate, language: str) -> None:
        self.authenticate = authenticate
        self.language = language

    def handle(self, data: bytes, client: ClientConfig, source: str) -> Answer:
        """Decode, check, decide and answer one datagram from ``client``."""
        admitted = self.admit(data, client)
        if isinstance(admitted, Answer):
            return admitted
        started = time.perf_counter()
        auth = self.to_auth(admitted, client, source)
        if isinstance(auth, Answer):
            return auth
        try:
            outcome = self.authenticate(auth)
        except Unavailable as exc:
            return unavailable(exc)
        except OtpError as exc:
            return failed(exc, client, auth.login)
        return self.reply(admitted, client, outcome, source, started)

    def admit(self, data: bytes, client: ClientConfig) -> Request | Answer:
        """The decoded request, or the answer to send now (a drop, or Status-Server's Accept)."""
        try:
            request = decode_request(data, client.secret)
        except UnexpectedCode as exc:
            # Well formed, only sent to the wrong port (accounting, most often): not malformed.
            return Answer(None, drop_reason=f"unexpected_code:{exc.name}")
        except MalformedPacket as exc:
            return Answer(None, drop_reason=f"malformed:{exc.reason}")
        refused = admission_problem(request, client)
        if refused is not None:
            return Answer(None, drop_reason=refused)
        if request.code is Codes.STATUS_SERVER:
            return Answer(encode_reply(request, Codes.ACCESS_ACCEPT, client.secret))
        return request

    def to_auth(
        self,
        request: Request,
        client: ClientConfig,
        source: str,
        received: datetime | None = None,
    ) -> AuthRequest | Answer:
        """The otpcore request, or a Reject decided from the packet alone.

        ``received``: the instant the datagram was read, which the request is judged at.
        """
        login = request.user_name or ""
        other_method = request.has_chap or request.has_eap
        if request.password is None:
            # The method first (SPEC §4): a NAS set up for CHAP must learn that PAP is needed,
            # whatever else its request lacks.
            reason = Reason.PAP_REQUIRED if other_method else Reason.INVALID_REQUEST
            return self._early(request, client, source, login, reason)
        if other_method:
            # RFC 2865 §4.1: never User-Password and CHAP-Password together. And EAP we do
            # not speak (RFC 2869 §5.13: Reject it): answered as PAP, its NAS would get a
            # Challenge or Accept without the EAP-Message it waits for. Which credential was
            # meant is not ours to guess.
            return self._early(request, client, source, login, Reason.INVALID_REQUEST)
        if not login or not request.user_name_utf8:
            # A name that is not UTF-8 is logged as its escaped octets, and looked up nowhere.
            return self._early(request, client, source, login, Reason.INVALID_REQUEST)
        try:
            password = request.password.decode("utf-8")
        except UnicodeDecodeError:
            return self._early(request, client, source, login, Reason.INVALID_REQUEST)
        identity = request.identity(client.name)
        return AuthRequest(
            login, password, client.mode, request.state, identity, client.name, received
        )

    def _early(
        self, request: Request, client: ClientConfig, source: str, login: str, reason: Reason
    ) -> Answer:
        outcome = AuthOutcome(Result.REJECT, reason, login)
        return self.reply(request, client, outcome, source, time.perf_counter())

    def reply(
        self,
        request: Request,
        client: ClientConfig,
        outcome: AuthOutcome,
        source: str,
        started: float,
    ) -> Answer:
        """Log the decision and build the signed reply."""
        log_decision(outcome, client, source, started)
        text = reply_text(
            self.language, outcome.result, outcome.reason, outcome.prompt, outcome.serial
        )
        code = _CODES[outcome.result]
        reject = outcome.result is Result.REJECT
        try:
            return Answer(
                encode_reply(request, code, client.secret, reply_message=text, state=outcome.state),
                reject=reject,
            )
        except ValueError:
            pass  # echoed Proxy-State made it too long: answer without the message
        try:
            return Answer(encode_reply(request, code, client.secret, state=outcome.state), reject)
        except ValueError:
            return Answer(None, drop_reason="reply_too_long")


def failed(exc: Exception, client: ClientConfig, login: str) -> Answer:
    """A request that could not be decided: dropped, and logged without any secret."""
    # A key file error says what to fix (a node not yet given the rotated key) and names a
    # serial at most; other errors may quote what they were handed, so only their class.
    detail = f" detail={field(str(exc))}" if isinstance(exc, KeyFileError) else ""
    log.error("auth error=%s%s user=%s client=%s", type(exc).__name__, detail, field(login),
              field(client.name))  # fmt: skip
    return Answer(None, drop_reason="error")


def admission_problem(request: Request, client: ClientConfig) -> str | None:
    """Why a decoded request must be dropped unanswered (SPEC §4, BlastRADIUS), or None."""
    if request.has_message_authenticator and not request.message_authenticator_valid:
        return "bad_message_authenticator"
    if request.code is Codes.STATUS_SERVER:
        return None if request.has_message_authenticator else "missing_message_authenticator"
    if request.code is not Codes.ACCESS_REQUEST:
        return "unexpected_code"
    if not request.has_message_authenticator:
        if request.has_eap:
            # RFC 3579 §3.2, whatever the client's settings: EAP is never carried unsigned.
            return "eap_without_message_authenticator"
        if client.require_message_authenticator:
            return "missing_message_authenticator"
        if client.limit_proxy_state and request.proxy_states:
            return "proxy_state_without_message_authenticator"
    return None


def log_decision(outcome: AuthOutcome, client: ClientConfig, source: str, started: float) -> None:
    """The one log line of a decision (SPEC §9); never a password, OTP or secret."""
    if log.isEnabledFor(logging.INFO):  # built only to be written: level = "warning" skips it
        ms = (time.perf_counter() - started) * 1000
        # Passed with no arguments, so logging applies no %-formatting to a login with a "%".
        log.info(decision_line(outcome, client.name, source, client.mode.value, ms))
