"""The ``otpctl`` root group, its ``--config`` option, and the one place errors become exit codes.

Every ``OtpError`` a command raises leaves as ``otpctl: error: <message>`` on stderr with the
error's ``exit_code``; anything else is a bug and leaves as a one-line error with status 1
(the traceback only with ``OTPRADIUS_DEBUG=1``, since it could show local values).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any

import click

from cli.admin_ops import activate, check, delete_tokens, delete_users, revoke, unlock
from cli.audit import audit
from cli.context import CONFIG_ENV, DEFAULT_CONFIG, CliContext
from cli.db import db, init, key
from cli.entry import INTERRUPTED
from cli.tables import shown
from cli.tokens import token
from cli.users import user
from otpcore.errors import OtpError

DEBUG_ENV = "OTPRADIUS_DEBUG"


class CommandFailed(click.ClickException):
    """A command failed on purpose: one line on stderr, and the exit status given."""

    def __init__(self, message: str, exit_code: int) -> None:
        # One line, whatever the message held, and no escape sequence from a value it quotes.
        super().__init__(shown(" ".join(message.split())))
        # Recent click declares exit_code a class variable (ClassVar); each failure here
        # carries its own status, so it goes on the instance, where click's main reads it.
        self.__dict__["exit_code"] = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``otpctl: error: <message>`` on stderr."""
        click.echo(f"otpctl: error: {self.format_message()}", err=True, file=file)


def usage_failed(exc: click.UsageError) -> CommandFailed:
    """A wrong command line as one line, pointing at the help that shows the right one."""
    ctx = exc.ctx
    if (
        isinstance(exc, click.NoSuchOption)
        and exc.option_name == "--config"
        and ctx is not None
        and ctx.parent is not None
    ):
        # The group's option after the command: the command's help would not mention it.
        root = ctx.find_root().command_path
        command = ctx.command_path.removeprefix(root).strip()
        return CommandFailed(
            "No such option '--config': it goes before the command, "
            f"as in '{root} --config PATH {command}'",
            exc.exit_code,
        )
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return CommandFailed(exc.format_message() + where, exc.exit_code)


class OtpctlGroup(click.Group):
    """The root group: every subcommand runs inside its ``invoke``, so errors meet here."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the group's own options; a wrong one is a one-line error like any other."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # ``otpctl`` alone: the help itself, as click prints it
        except click.UsageError as exc:
            raise usage_failed(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping errors to a one-line message and an exit status."""
        try:
            return super().invoke(ctx)
        except OtpError as exc:
            raise CommandFailed(str(exc), exc.exit_code) from None
        except click.exceptions.NoArgsIsHelpError:
            raise  # ``otpctl user`` alone: that group's help
        except click.UsageError as exc:
            # click's own form is four lines (usage, hint, blank, error); SPEC §5 wants one.
            raise usage_failed(exc) from None
        except (click.ClickException, click.exceptions.Exit):
            raise
        except (click.Abort, KeyboardInterrupt):
            # click's "Aborted!" and status 1 would read, in a script, as a check that
            # rejected; 130 is how a shell reports Ctrl-C. click.prompt also ends this way
            # when standard input closes before the answer.
            raise CommandFailed(INTERRUPTED, 130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            # Only the type: the text of an unexpected error may quote a value we hold.
            raise CommandFailed(
                f"unexpected {type(exc).__name__} (a bug; run with {DEBUG_ENV}=1 for details)", 1
            ) from None


@click.group(cls=OtpctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    default=DEFAULT_CONFIG,
    show_default=True,
    show_envvar=True,
    help="Configuration file.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Administer otpradius: users, tokens, unlock, revoke, audit (the bank manual's procedures)."""
    obj = CliContext(config_path)
    ctx.obj = obj
    ctx.call_on_close(obj.close)


for _command in (init, db, key, user, token, activate, unlock, revoke, check, audit):
    cli.add_command(_command)
user.add_command(delete_users)
token.add_command(delete_tokens)


def main() -> None:
    """Run otpctl (the console script enters through ``cli.entry``)."""
    # Warnings from the core (e.g. a key rotation waiting for another) reach the operator on
    # stderr; those of a decision go into the command's own lines (cli.decision_log).
    logging.basicConfig(level=logging.WARNING, format="otpctl: %(levelname)s: %(message)s")
    cli.main(prog_name="otpctl")


if __name__ == "__main__":
    main()
