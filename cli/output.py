"""What commands print: tables with the manual's column terms (en/ja), and JSON (SPEC §5 keys).

Labels come from the bank's manual so that an operator sees the words of its screens:
ログインID, 利用者名, 利用者区分, シリアル番号, ワンタイムパスワード状態 …
How a table is laid out on the terminal, whatever its terms, is cli/tables.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

import click

from cli.tables import Lines, display_width, echo_table, render_table, shown
from otpcore.model import OtpState, TokenKind, UserClass
from otpcore.views import AuditEvent, TokenListing, UserView

F = TypeVar("F", bound=Callable[..., Any])

MISSING = "-"  # the manual's screens show a dash where there is no value


class Lang(StrEnum):
    """The language of labels and messages."""

    EN = "en"
    JA = "ja"


def default_lang() -> Lang:
    """Japanese when LANG says so (ja_JP.UTF-8 …), else English."""
    return Lang.JA if os.environ.get("LANG", "").startswith("ja") else Lang.EN


def lang_option(command: F) -> F:
    """Add ``--lang en|ja`` to a command; it receives ``lang`` as a ``Lang``."""
    return click.option(
        "--lang",
        type=click.Choice([lang.value for lang in Lang]),
        default=lambda: default_lang().value,
        show_default="from LANG",
        callback=lambda _ctx, _param, value: Lang(value),
        help="Language of labels and messages.",
    )(command)


def output_options(command: F) -> F:
    """Add ``--json`` and ``--lang`` to a command; it receives ``as_json`` and ``lang``."""
    command = lang_option(command)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        command
    )


def echo_json(value: object) -> None:
    """Print a value as JSON, non-ASCII kept readable (names are often Japanese).

    Only printable characters reach the terminal: json escapes C0 controls itself, but with
    ``ensure_ascii=False`` it would pass DEL, C1 controls and bidi overrides as they are.
    Outside strings JSON holds only printable ASCII and line breaks, so whatever else the
    text holds is inside a string, and its ``\\uXXXX`` escape reads back as the same value.
    """
    click.echo(_json_text(value))


def echo_json_list(items: Iterable[object]) -> None:
    """Print values as one JSON list, the same text as ``echo_json`` of the list, written an
    item at a time: a listing of a million users is never held whole."""
    out = Lines()
    first = True
    for item in items:
        # An item's lines indented by two: as json.dumps lays out a list's items.
        text = _json_text(item).replace("\n", "\n  ")
        out.add(("[\n  " if first else ",\n  ") + text)
        first = False
    out.add("[]" if first else "\n]")
    out.flush(end="\n")


def _json_text(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    if not text.replace("\n", "").isprintable():
        text = "".join(c if c == "\n" or c.isprintable() else json.dumps(c)[1:-1] for c in text)
    return text


# Labels

CLASS_LABELS: dict[Lang, dict[UserClass, str]] = {
    Lang.EN: {UserClass.MASTER: "master", UserClass.ADMIN: "admin", UserClass.GENERAL: "general"},
    Lang.JA: {
        UserClass.MASTER: "マスターユーザ",
        UserClass.ADMIN: "管理者ユーザ",
        UserClass.GENERAL: "一般ユーザ",
    },
}
STATE_LABELS: dict[Lang, dict[OtpState, str]] = {
    Lang.EN: {state: state.value for state in OtpState},
    Lang.JA: {
        OtpState.UNREGISTERED: "未登録",
        OtpState.ISSUED: "トークン発行済み",
        OtpState.ACTIVE: "サービス利用中",
        OtpState.EXPIRED: "トークン有効期限切れ",
        OtpState.REVOKED: "失効中",
    },
}
AUTH_LABELS: dict[Lang, dict[bool, str]] = {
    Lang.EN: {False: "available", True: "suspended"},
    Lang.JA: {False: "利用可能", True: "停止中"},
}
TOKEN_DISABLED_LABELS: dict[Lang, str] = {Lang.EN: "token disabled", Lang.JA: "トークン無効"}
KIND_LABELS: dict[Lang, dict[str, str]] = {
    Lang.EN: {kind.value: kind.value for kind in TokenKind},
    Lang.JA: {TokenKind.HARDWARE.value: "ハードウェア", TokenKind.SOFTWARE.value: "ソフトウェア"},
}
DISABLED_LABELS: dict[Lang, dict[bool, str]] = {
    Lang.EN: {False: "enabled", True: "disabled"},
    Lang.JA: {False: "有効", True: "無効"},
}
ACTION_LABELS_JA = {
    "user_add": "利用者登録",
    "user_import": "利用者一括登録",
    "issue": "トークン発行",
    "passwd": "パスワード設定",
    "token_import": "トークン登録",
    "token_disable": "トークン無効化",
    "token_enable": "トークン有効化",
    "activate": "利用開始登録",
    "suspend": "利用停止",
    "unlock": "利用停止解除",
    "revoke": "トークン失効",
    "user_delete": "利用者削除",
    "token_delete": "トークン削除",
    "key_rotate": "暗号鍵更新",
    "db_backup": "データベースバックアップ",
    "db_upgrade": "データベース更新",
}
OUTCOME_LABELS_JA = {"ok": "成功", "denied": "拒否", "refused": "実行不可"}

HEADERS: dict[Lang, dict[str, str]] = {
    Lang.EN: {
        "login": "Login ID",
        "name": "User name",
        "class": "Class",
        "serial": "Serial number",
        "state": "OTP state",
        "suspended": "OTP authentication",
        "token_expires": "Token expiry",
        "start": "Service start date",
        "kind": "Kind",
        "algorithm": "Algorithm",
        "digits": "Digits",
        "period": "Period (s)",
        "users": "Users",
        "disabled": "Inventory",
        "fail_count": "Failures",
        "at": "Time",
        "actor": "Actor",
        "action": "Action",
        "targets": "Targets",
        "outcome": "Outcome",
        "detail": "Detail",
    },
    Lang.JA: {
        "login": "ログインID",
        "name": "利用者名",
        "class": "利用者区分",
        "serial": "シリアル番号",
        "state": "ワンタイムパスワード状態",
        "suspended": "ワンタイムパスワード認証状態",
        "token_expires": "トークン有効期限",
        "start": "利用開始日",
        "kind": "種別",
        "algorithm": "アルゴリズム",
        "digits": "桁数",
        "period": "周期（秒）",
        "users": "利用者",
        "disabled": "利用可否",
        "fail_count": "連続失敗回数",
        "at": "日時",
        "actor": "操作者",
        "action": "操作",
        "targets": "対象",
        "outcome": "結果",
        "detail": "詳細",
    },
}

# Column sets: the full user listing, and the manual's two result screens.
USER_COLUMNS = ("login", "name", "class", "serial", "state", "suspended", "token_expires")
UNLOCK_COLUMNS = ("login", "name", "class", "serial", "state", "suspended")
REVOKE_COLUMNS = ("login", "name", "class", "serial", "state", "token_expires")
DELETE_COLUMNS = UNLOCK_COLUMNS  # the users as the manual's result screen shows them
TOKEN_COLUMNS = (
    "serial", "kind", "algorithm", "digits", "period", "token_expires", "users",
    "suspended", "disabled", "fail_count",
)  # fmt: skip
AUDIT_COLUMNS = ("at", "actor", "action", "targets", "outcome", "detail")


# Values


def local_time(value: datetime) -> datetime:
    """An aware instant in the host's time zone (``TZ``), or in UTC where that zone cannot
    hold it: an expiry of 9999-12-31 23:00 UTC is past year 9999 in Japan or India, and
    ``astimezone()`` raises OverflowError there. Either way the zone's name goes with it."""
    try:
        return value.astimezone()
    except OverflowError:
        return value.astimezone(UTC)


def format_instant(value: datetime | None, lang: Lang, *, seconds: bool = False) -> str:
    """An instant in the local time zone, as the manual writes it (2021年09月30日 09時00分 JST)."""
    if value is None:
        return MISSING
    local = local_time(value)  # operators read local time; JSON keeps UTC ISO 8601
    # The zone always shows: on a host kept in UTC, a bare 00時00分 is read as Japan time.
    if lang is Lang.JA:
        pattern = "%Y年%m月%d日 %H時%M分" + ("%S秒" if seconds else "") + " %Z"
        return local.strftime(pattern)
    return local.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " %Z")


def format_date(value: date | None, lang: Lang) -> str:
    """A calendar date (a service start date)."""
    if value is None:
        return MISSING
    return value.strftime("%Y年%m月%d日") if lang is Lang.JA else value.isoformat()


def user_cells(view: UserView, lang: Lang) -> dict[str, str]:
    """Every displayable field of a user, labelled for ``lang``."""
    return {
        "login": view.login,
        "name": view.name,
        "class": CLASS_LABELS[lang][view.user_class],
        "serial": view.serial or MISSING,
        "state": STATE_LABELS[lang][view.state],
        "suspended": _authentication(view, lang),
        "token_expires": format_instant(view.token_expires, lang),
        "start": format_date(view.start_date, lang),
    }


def _authentication(view: UserView, lang: Lang) -> str:
    # "available" beside a disabled token read as if the user could log in: every login is
    # refused (token_disabled) until the token is enabled again.
    if view.token_disabled and not view.suspended:
        return TOKEN_DISABLED_LABELS[lang]
    return AUTH_LABELS[lang][view.suspended]


def token_cells(token: TokenListing, lang: Lang) -> dict[str, str]:
    """Every displayable field of a token, labelled for ``lang``."""
    return {
        "serial": token.serial,
        "kind": KIND_LABELS[lang].get(token.kind, token.kind),
        "algorithm": token.algorithm,
        "digits": str(token.digits),
        "period": str(token.period),
        "token_expires": format_instant(token.expires, lang),
        "users": ",".join(token.users) or MISSING,
        "suspended": AUTH_LABELS[lang][token.suspended],
        "disabled": DISABLED_LABELS[lang][token.disabled],
        "fail_count": str(token.fail_count),
    }


def audit_cells(event: AuditEvent, lang: Lang) -> dict[str, str]:
    """Every displayable field of an audit event, labelled for ``lang``."""
    action, outcome = event.action, event.outcome
    if lang is Lang.JA:
        action = ACTION_LABELS_JA.get(action, action)
        outcome = OUTCOME_LABELS_JA.get(outcome, outcome)
    return {
        "at": format_instant(event.at, lang, seconds=True),
        "actor": event.actor,
        "action": action,
        "targets": ",".join(event.targets) or MISSING,
        "outcome": outcome,
        "detail": event.detail or MISSING,
    }


# Tables


def table(lang: Lang, columns: Sequence[str], cells: Iterable[dict[str, str]]) -> str:
    """A table of the named columns from per-row cell dicts."""
    headers = [HEADERS[lang][column] for column in columns]
    return render_table(headers, ([row[column] for column in columns] for row in cells))


def echo_listing(lang: Lang, columns: Sequence[str], cells: Iterable[dict[str, str]]) -> None:
    """``table`` printed a row at a time (see ``echo_table``)."""
    headers = [HEADERS[lang][column] for column in columns]
    echo_table(headers, ([row[column] for column in columns] for row in cells))


def user_table(views: Iterable[UserView], lang: Lang, columns: Sequence[str] = USER_COLUMNS) -> str:
    """Users as the manual's 利用者一覧."""
    return table(lang, columns, (user_cells(view, lang) for view in views))


def user_detail(view: UserView, lang: Lang) -> str:
    """One user, a field per line."""
    cells = user_cells(view, lang)
    columns = (*USER_COLUMNS, "start")
    width = max(display_width(HEADERS[lang][column]) for column in columns)
    return "\n".join(
        HEADERS[lang][column]
        + " " * (width - display_width(HEADERS[lang][column]))
        + "  "
        + shown(cells[column])
        for column in columns
    )


def token_table(tokens: Iterable[TokenListing], lang: Lang) -> str:
    """The token inventory."""
    return table(lang, TOKEN_COLUMNS, (token_cells(token, lang) for token in tokens))


def echo_users(views: Iterable[UserView], lang: Lang) -> None:
    """Print ``user_table`` of the users, a row at a time."""
    echo_listing(lang, USER_COLUMNS, (user_cells(view, lang) for view in views))


def echo_tokens(tokens: Iterable[TokenListing], lang: Lang) -> None:
    """Print ``token_table`` of the tokens, a row at a time."""
    echo_listing(lang, TOKEN_COLUMNS, (token_cells(token, lang) for token in tokens))


def echo_audit(events: Iterable[AuditEvent], lang: Lang) -> None:
    """Print audit events in time order, a row at a time."""
    echo_listing(lang, AUDIT_COLUMNS, (audit_cells(event, lang) for event in events))
