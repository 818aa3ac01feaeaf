"""``otpctl user …``: add, list, show, issue a token to, and set passwords of users."""

from __future__ import annotations

from datetime import datetime

import click

from cli.context import CliContext
from cli.messages import say
from cli.output import (
    CLASS_LABELS,
    Lang,
    echo_json,
    format_date,
    lang_option,
    output_options,
    user_detail,
    user_table,
)
from cli.prompts import Secrets, password_stdin_option
from otpcore.admin import PRIVILEGED, Admin, check_login
from otpcore.errors import AlreadyExists, NotFound, StateError
from otpcore.model import UserClass

pass_cli = click.make_pass_decorator(CliContext)

DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.group("user")
def user() -> None:
    """Users of the portal: master, admin and general users."""


@user.command("add")
@click.argument("login")
@click.option("--name", required=True, help="The user's name (利用者名).")
@click.option(
    "--class",
    "user_class",
    required=True,
    type=click.Choice([c.value for c in UserClass]),
    help="master or admin users may unlock and revoke; they also get a confirmation password.",
)
@password_stdin_option
@output_options
@pass_cli
def add(
    obj: CliContext,
    login: str,
    name: str,
    user_class: str,
    password_stdin: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Create a user; prompts the login password, and for master/admin the confirmation one."""
    cls = UserClass(user_class)
    admin = obj.admin()
    _refuse_present(admin, login)  # before anyone types a password in vain
    secrets = Secrets(password_stdin)
    password = secrets.ask(say(lang, "prompt_new_password", login=login), new=True)
    confirmation = None
    if cls in PRIVILEGED:
        confirmation = secrets.ask(say(lang, "prompt_new_confirmation", login=login), new=True)
    view = admin.add_user(login, name, cls, password, confirmation)
    if as_json:
        echo_json(view.as_json())
        return
    label = CLASS_LABELS[lang][cls]
    click.echo(say(lang, "user_added", login=login, name=name, user_class=label))


@user.command("list")
@output_options
@pass_cli
def list_users(obj: CliContext, as_json: bool, lang: Lang) -> None:
    """Every user: login, name, class, serial, state, suspended, token expiry."""
    views = obj.admin().users()
    if as_json:
        echo_json([view.as_json() for view in views])
    else:
        click.echo(user_table(views, lang))


@user.command("show")
@click.argument("login")
@output_options
@pass_cli
def show(obj: CliContext, login: str, as_json: bool, lang: Lang) -> None:
    """One user."""
    view = obj.admin().user(login)
    if as_json:
        echo_json(view.as_json())
    else:
        click.echo(user_detail(view, lang))


@user.command("issue")
@click.argument("login")
@click.option(
    "--start",
    required=True,
    type=DATE,
    help="Service start date YYYY-MM-DD (利用開始日, as in the bank's letter).",
)
@output_options
@pass_cli
def issue(obj: CliContext, login: str, start: datetime, as_json: bool, lang: Lang) -> None:
    """Record that a token was sent to the user: state issued, activation from the start date."""
    view = obj.admin().issue(login, start.date())
    if as_json:
        echo_json(view.as_json())
    else:
        click.echo(say(lang, "user_issued", login=login, start=format_date(start.date(), lang)))


@user.command("passwd")
@click.argument("login")
@click.option(
    "--confirmation",
    is_flag=True,
    help="Set the confirmation password (確認用パスワード) of a master or admin user.",
)
@password_stdin_option
@lang_option
@pass_cli
def passwd(
    obj: CliContext, login: str, confirmation: bool, password_stdin: bool, lang: Lang
) -> None:
    """Set a user's login password, or with --confirmation the confirmation password."""
    admin = obj.admin()
    present = admin.user(login)  # NotFound before anyone types a password in vain
    if confirmation and present.user_class not in PRIVILEGED:
        raise StateError(f"user {login} is {present.user_class.value}: no confirmation password")
    key = "prompt_new_confirmation" if confirmation else "prompt_new_password"
    secret = Secrets(password_stdin).ask(say(lang, key, login=login), new=True)
    admin.set_password(login, secret, confirmation=confirmation)
    done = "confirmation_password_set" if confirmation else "login_password_set"
    click.echo(say(lang, done, login=login))


def _refuse_present(admin: Admin, login: str) -> None:
    check_login(login)
    try:
        admin.user(login)
    except NotFound:
        return
    raise AlreadyExists(f"user {login} already exists")
