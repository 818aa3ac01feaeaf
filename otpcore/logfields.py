"""Values in key=value log lines, quoted so that no value can break or forge a line."""

from __future__ import annotations

from otpcore.attempts import AuthOutcome


def field(value: str | None) -> str:
    """A log value that cannot break the key=value line: quoted when it has odd characters."""
    if value is None or value == "":
        return "-"
    # Printable text of any script is kept as it is, so that a Japanese login reads and greps
    # as typed; line breaks, controls, bidi overrides and unusual spaces are escaped.
    if value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return '"' + "".join(_escaped(c) for c in value) + '"'


def _escaped(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def decision_line(outcome: AuthOutcome, client: str, source: str, mode: str, ms: float) -> str:
    """The one log line of a decision (SPEC §9); never a password, OTP or secret."""
    return (
        f"auth result={outcome.result.value} reason={outcome.reason.value} "
        f"user={field(outcome.login)} client={field(client)} src={source} mode={mode} "
        f"serial={field(outcome.serial)} ms={ms:.1f}{' resent=1' if outcome.resent else ''}"
    )
