"""``otpctl user …``: add, import, list, show, issue a token to, and set passwords of users."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from cli.admin_ops import start_instant
from cli.context import CliContext, operator
from cli.files import echo_imported, import_text, read_import_file, shown_path
from cli.messages import say
from cli.output import (
    CLASS_LABELS,
    Lang,
    echo_json,
    echo_json_list,
    echo_users,
    format_date,
    format_instant,
    output_options,
    user_detail,
)
from cli.params import day, utf8_text
from cli.progress import progress_bar
from cli.prompts import Secrets, password_stdin_option
from otpcore.admin import Admin, check_login
from otpcore.approvals import PRIVILEGED
from otpcore.errors import AlreadyExists, NotFound, StateError
from otpcore.model import UserClass, service_start
from otpcore.onboarding import import_users
from otpcore.user_csv import read_user_csv

pass_cli = click.make_pass_decorator(CliContext)


@click.group("user")
def user() -> None:
    """Users of the portal: master, admin and general users."""


@user.command("add")
@click.argument("login", callback=utf8_text)
@click.option(
    "--name", callback=utf8_text, required=True, metavar="NAME", help="The user's name (利用者名)."
)
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
    password = secrets.ask(
        say(lang, "prompt_new_password", login=login),
        repeat=say(lang, "prompt_repeat_password", login=login),
    )
    confirmation = None
    if cls in PRIVILEGED:
        confirmation = secrets.ask(
            say(lang, "prompt_new_confirmation", login=login),
            repeat=say(lang, "prompt_repeat_confirmation", login=login),
        )
    view = admin.add_user(login, name, cls, password, confirmation)
    if as_json:
        echo_json(view.as_json())
        return
    label = CLASS_LABELS[lang][cls]
    click.echo(say(lang, "user_added", login=login, name=name, user_class=label))


@user.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--update",
    is_flag=True,
    help="Change users whose login is already present (name, password; class, start and "
    "serial where the row gives them).",
)
@output_options
@pass_cli
def import_user_file(obj: CliContext, file: Path, update: bool, as_json: bool, lang: Lang) -> None:
    """Create users from a CSV (login,name,class,password,start,serial): the whole file, or nothing.

    password_hash (an argon2 PHC string) may replace password; start makes the user issued;
    serial binds the user to a token of the inventory at once (state active).
    """
    app = obj.app()
    name = shown_path(file)
    rows = read_user_csv(import_text(read_import_file(file), file), name)
    with progress_bar(say(lang, "progress_users")) as progress:
        done = import_users(
            app.store,
            app.hashing,
            app.clock,
            rows,
            update=update,
            actor=operator(),
            progress=progress,
            source=name,
        )
    echo_imported(done, name, lang, as_json, "users_imported" if not update else "users_updated")


@user.command("list")
@output_options
@pass_cli
def list_users(obj: CliContext, as_json: bool, lang: Lang) -> None:
    """Every user: login, name, class, serial, state, suspended, token expiry."""
    admin = obj.admin()
    if as_json:
        echo_json_list(view.as_json() for view in admin.each_user())
    else:
        echo_users(admin.each_user(), lang)


@user.command("show")
@click.argument("login", callback=utf8_text)
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
@click.argument("login", callback=utf8_text)
@click.option(
    "--start",
    required=True,
    callback=day,
    metavar="YYYY-MM-DD",
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
        day = start.date()
        # East of UTC a start date opens after local midnight (09:00 in Japan): an operator
        # who issues with today's date to activate at once must see when it really opens.
        opens = start_instant(day) if lang is Lang.EN else format_instant(service_start(day), lang)
        click.echo(say(lang, "user_issued", login=login, start=format_date(day, lang), opens=opens))


@user.command("passwd")
@click.argument("login", callback=utf8_text)
@click.option(
    "--confirmation",
    is_flag=True,
    help="Set the confirmation password (確認用パスワード) of a master or admin user.",
)
@password_stdin_option
@output_options
@pass_cli
def passwd(
    obj: CliContext,
    login: str,
    confirmation: bool,
    password_stdin: bool,
    as_json: bool,
    lang: Lang,
) -> None:
    """Set a user's login password, or with --confirmation the confirmation password."""
    admin = obj.admin()
    present = admin.user(login)  # NotFound before anyone types a password in vain
    if confirmation and present.user_class not in PRIVILEGED:
        raise StateError(f"user {login} is {present.user_class.value}: no confirmation password")
    which = "confirmation" if confirmation else "password"
    secret = Secrets(password_stdin).ask(
        say(lang, f"prompt_new_{which}", login=login),
        repeat=say(lang, f"prompt_repeat_{which}", login=login),
    )
    admin.set_password(login, secret, confirmation=confirmation)
    if as_json:
        # The user as it stands: a script sees that a new password lifted no suspension.
        echo_json(admin.user(login).as_json())
        return
    done = "confirmation_password_set" if confirmation else "login_password_set"
    click.echo(say(lang, done, login=login))


def _refuse_present(admin: Admin, login: str) -> None:
    check_login(login)
    try:
        admin.user(login)
    except NotFound:
        return
    raise AlreadyExists(f"user {login} already exists")
