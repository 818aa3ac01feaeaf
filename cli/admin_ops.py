"""The manual's procedures: activate (利用開始登録), unlock (利用停止解除), revoke (失効), check,
user delete (利用者削除) and token delete (トークン削除).

unlock, revoke and the deletions are confirmed by a master or admin user's own confirmation
password and print what they changed as the manual's result screens do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import click

from cli.context import CliContext
from cli.messages import describe, say
from cli.output import (
    DELETE_COLUMNS,
    REVOKE_COLUMNS,
    UNLOCK_COLUMNS,
    Lang,
    echo_json,
    format_instant,
    local_time,
    output_options,
    token_table,
    user_table,
)
from cli.params import utf8_text
from cli.prompts import Secrets, password_stdin_option
from cli.tables import shown
from otpcore.admin import Admin
from otpcore.attempts import AuthOutcome, AuthRequest
from otpcore.errors import NotFound
from otpcore.model import InputMode, OtpState, Reason, Result, Stage, service_start
from otpcore.views import UserView

pass_cli = click.make_pass_decorator(CliContext)

EXIT_REJECT = 1
EXIT_CHALLENGE = 10  # check stopped at a challenge: --password-stdin input ran out
MAX_ROUNDS = 4  # login, serial, activation OTP: a fourth challenge would be a bug


def print_outcome(outcome: AuthOutcome, as_json: bool, lang: Lang) -> None:
    """``accept|reject|challenge: reason — what it means``, or the SPEC §5 JSON."""
    if as_json:
        echo_json({"result": outcome.result.value, "reason": outcome.reason.value})
        return
    line = f"{outcome.result.value}: {outcome.reason.value} — {describe(outcome.reason, lang)}"
    click.echo(line)


def exit_status(outcome: AuthOutcome) -> int:
    """0 only on accept."""
    if outcome.result is Result.ACCEPT:
        return 0
    return EXIT_CHALLENGE if outcome.result is Result.CHALLENGE else EXIT_REJECT


@click.command("activate")
@click.argument("login", callback=utf8_text)
@click.argument("serial", callback=utf8_text)
@password_stdin_option
@output_options
@pass_cli
@click.pass_context
def activate(
    ctx: click.Context,
    obj: CliContext,
    login: str,
    serial: str,
    password_stdin: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Activate SERIAL for LOGIN with the OTP it shows (for portals without challenges).

    Exits 0 only when the token is now bound to the user.
    """
    authenticator = obj.authenticator()
    decisions = obj.decision_log("activate")
    # Refused whatever the code (issued for a later start date, already bound, suspended):
    # said before a code is asked for, so that nobody reads one off the token for nothing.
    outcome = decisions.decide(partial(authenticator.activation_refusal, login, serial))
    if outcome is None:
        otp = Secrets(password_stdin).ask(say(lang, "prompt_otp", serial=serial))
        outcome = decisions.decide(partial(authenticator.activate, login, serial, otp))
    print_outcome(outcome, as_json, lang)
    if outcome.result is Result.ACCEPT and outcome.reason is Reason.ACTIVATED:
        tell(None, decisions.notes)
        ctx.exit(0)
    # The outcome above is for scripts; the usual one error line is for whoever reads stderr.
    why = f"activation refused: {outcome.reason.value}"
    if outcome.reason is Reason.NOT_AWAITING_ACTIVATION:
        why += not_awaiting_hint(obj.admin(), login)
    tell(why, decisions.notes)
    ctx.exit(EXIT_REJECT)


def tell(why: str | None, notes: list[str]) -> None:
    """Say on stderr why a command failed, in one line with its notes; or, when it did not,
    each note as a warning."""
    if why is None:
        for note in notes:
            click.echo(f"otpctl: WARNING: {shown(note)}", err=True)
        return
    # SPEC §5: one line, however much else the operator must learn (a token just suspended).
    click.echo(f"otpctl: error: {shown('; '.join([why, *notes]))}", err=True)


def not_awaiting_hint(admin: Admin, login: str) -> str:
    """Why LOGIN is not awaiting activation, and what to do: ``: …``, or "" if it cannot tell.

    The reason alone sent an operator who had issued the token, as the bank's letter says,
    looking for a mistake: activation opens on the start date, not when the token is issued.
    """
    try:
        user = admin.user(login)
    except NotFound:
        return ""  # deleted meanwhile
    if user.serial is not None:
        return f": {login} already has token {user.serial}; revoke it first"
    if user.state is OtpState.ISSUED and user.start_date is not None:
        when = start_instant(user.start_date)
        return f": {login}'s service starts at {when}: activation opens then"
    if user.state is OtpState.UNREGISTERED:
        return (
            f": no token was issued to {login}; "
            f"run 'otpctl user issue {login} --start YYYY-MM-DD' first"
        )
    return ""


def start_instant(start_date: date) -> str:
    """When activation opens for a start date, in the host's zone and named, as the decision
    reads it (``service_start``): ``2026-12-01 09:00 JST (2026-12-01 00:00 UTC)``.

    A bare date is read as a local day, and activation does not open at local midnight: at
    09:00 in Japan, the evening before in New York. The UTC form follows in any zone but UTC.
    """
    start = service_start(start_date)
    shown_local = format_instant(start, Lang.EN)
    if local_time(start).utcoffset():
        return f"{shown_local} ({start_date.isoformat()} 00:00 UTC)"
    return shown_local


@click.command("check")
@click.argument("login", callback=utf8_text)
@password_stdin_option
@output_options
@pass_cli
@click.pass_context
def check(
    ctx: click.Context,
    obj: CliContext,
    login: str,
    password_stdin: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Run the authentication decision in-process, as a RADIUS client would.

    Prompts the login password, then whatever the decision asks for (the OTP; during
    activation the serial number, then the OTP). Prints accept, reject or challenge and
    the reason. Exit status: 0 accept, 1 reject, 10 a challenge left unanswered because
    --password-stdin input ran out.
    """
    authenticator = obj.authenticator()
    secrets = Secrets(password_stdin)
    password = secrets.ask(say(lang, "prompt_password", login=login))
    decisions = obj.decision_log(InputMode.CHALLENGE.value)
    # Challenge mode: the password alone first, each further factor in its own answer,
    # so that the prompts come one at a time as on the bank's screens.
    first = AuthRequest(login, password, InputMode.CHALLENGE)
    outcome = decisions.decide(partial(authenticator.authenticate, first))
    for _ in range(MAX_ROUNDS):
        if outcome.result is not Result.CHALLENGE:
            break
        if outcome.prompt is Stage.ACTIVATION_SERIAL:
            answer = secrets.ask_optional(say(lang, "prompt_serial"), hidden=False)
        else:
            answer = secrets.ask_optional(say(lang, "prompt_otp", serial=outcome.serial or ""))
        if answer is None:
            break
        request = AuthRequest(login, answer, InputMode.CHALLENGE, state=outcome.state)
        outcome = decisions.decide(partial(authenticator.authenticate, request))
    print_outcome(outcome, as_json, lang)
    status = exit_status(outcome)
    # The result stays on stdout for scripts; SPEC §5 wants every non-zero exit to say why
    # on stderr too.
    tell(f"{login} was not accepted ({outcome.result.value})" if status else None, decisions.notes)
    ctx.exit(status)


@dataclass(frozen=True)
class Approval:
    """What an approved command gets: the operations, who approves, and how to print."""

    admin: Admin
    approver: str
    confirmation: str = field(repr=False)
    as_json: bool
    lang: Lang


def approved(name: str, argument: str, action: str) -> Callable[
        [Callable[[Approval, tuple[str, ...]], None]], click.Command]:  # fmt: skip
    """``otpctl NAME --admin ADMIN ARGUMENT...``: an operation a master or admin user approves
    with the confirmation password, which is prompted (or read) before anything is done, once
    ADMIN is known to be able to approve at all (``action`` names a refusal in the audit)."""

    def decorate(act: Callable[[Approval, tuple[str, ...]], None]) -> click.Command:
        @click.option("--admin", "admin_login", callback=utf8_text, required=True,
                      metavar="ADMIN", help="The master or admin user acting.")  # fmt: skip
        # SPEC §5's spelling (LOGIN..., SERIAL...), not the parameter's plural.
        @click.argument(argument, nargs=-1, required=True, callback=utf8_text,
                        metavar=argument.removesuffix("s").upper() + "...")  # fmt: skip
        @password_stdin_option
        @output_options
        @pass_cli
        def command(obj: CliContext, /, admin_login: str, password_stdin: bool, as_json: bool,
                    lang: Lang, **given: tuple[str, ...]) -> None:  # fmt: skip
            admin = obj.admin()
            admin.check_approver(admin_login, action, given[argument])
            confirmation = _confirmation(admin_login, password_stdin, lang)
            approval = Approval(admin, admin_login, confirmation, as_json, lang)
            act(approval, given[argument])

        return click.command(name, help=act.__doc__)(command)

    return decorate


@approved("unlock", "logins", "unlock")
def unlock(approval: Approval, logins: tuple[str, ...]) -> None:
    """Lift the OTP suspension of users; every user sharing their serial is lifted with them.

    Prompts ADMIN's confirmation password and prints every user whose suspension was lifted.
    """
    lifted = approval.admin.unlock(approval.approver, approval.confirmation, logins)
    _print_changed(lifted, approval, "unlocked", UNLOCK_COLUMNS, "nothing_unlocked")


@approved("revoke", "logins", "revoke")
def revoke(approval: Approval, logins: tuple[str, ...]) -> None:
    """Revoke the token of users, say a lost one: they must activate a token again.

    Prompts ADMIN's confirmation password and prints every user revoked, with the serial
    and expiry of the token they had. The token and its other users are untouched.
    """
    revoked = approval.admin.revoke(approval.approver, approval.confirmation, logins)
    _print_changed(revoked, approval, "revoked", REVOKE_COLUMNS, "revoked")


@approved("delete", "logins", "user_delete")
def delete_users(approval: Approval, logins: tuple[str, ...]) -> None:
    """Delete users, say when an account is closed: they can no longer log in at all.

    Prompts ADMIN's confirmation password and prints every user deleted, as they were. Their
    tokens and the tokens' other users stay; all the logins or none are deleted.
    """
    deleted = approval.admin.delete_users(approval.approver, approval.confirmation, logins)
    _print_changed(deleted, approval, "deleted", DELETE_COLUMNS, "deleted")


@approved("delete", "serials", "token_delete")
def delete_tokens(approval: Approval, serials: tuple[str, ...]) -> None:
    """Delete tokens no user is bound to, say returned or destroyed ones, with their seeds.

    Prompts ADMIN's confirmation password and prints every token deleted. A token still bound
    to a user is refused: revoke or delete its users first. All the serials or none go.
    """
    deleted = approval.admin.delete_tokens(approval.approver, approval.confirmation, serials)
    if approval.as_json:
        echo_json([listing.as_json() for listing in deleted])
    else:
        click.echo(say(approval.lang, "tokens_deleted"))
        click.echo(token_table(deleted, approval.lang))


def _confirmation(admin_login: str, password_stdin: bool, lang: Lang) -> str:
    """The acting administrator's confirmation password, prompted or from stdin."""
    prompt = say(lang, "prompt_admin_confirmation", login=admin_login)
    return Secrets(password_stdin).ask(prompt)


def _print_changed(
    views: list[UserView], approval: Approval, heading: str, columns: Sequence[str],
    when_none: str,
) -> None:  # fmt: skip
    """The users an approved operation changed, like the manual's result screens."""
    if approval.as_json:
        echo_json([view.as_json() for view in views])
    elif views:
        click.echo(say(approval.lang, heading))
        click.echo(user_table(views, approval.lang, columns))
    else:
        click.echo(say(approval.lang, when_none))
