"""``otpctl audit``: admin operations and state changes, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from cli.context import CliContext
from cli.output import Lang, echo_audit, echo_json_list, output_options
from cli.params import day

pass_cli = click.make_pass_decorator(CliContext)


@click.command("audit")
@click.option(
    "--since",
    callback=day,
    default=None,
    metavar="YYYY-MM-DD",
    help="Only events from local midnight of that day on.",
)
@output_options
@pass_cli
def audit(obj: CliContext, since: datetime | None, as_json: bool, lang: Lang) -> None:
    """Admin operations and state changes: time, actor, action, targets, outcome."""
    admin = obj.admin()
    start = _local_midnight(since) if since is not None else None
    if as_json:
        echo_json_list(event.as_json() for event in admin.each_event(start))
    else:
        echo_audit(admin.each_event(start), lang)


def _local_midnight(day: datetime) -> datetime | None:
    """The start of ``day`` in the host's zone, as the table shows times; None for 0001-01-01
    east of UTC, which begins before the calendar does (every event is later)."""
    # click gives a naive midnight; astimezone() reads it as local time.
    try:
        start = day.astimezone()
        start.astimezone(UTC)  # the query compares in UTC
    except (OverflowError, ValueError):
        return None
    return start
