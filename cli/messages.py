"""Sentences otpctl says, in English and in the manual's Japanese: prompts, results, reasons."""

from __future__ import annotations

from cli.output import Lang
from cli.tables import shown
from otpcore.model import REASON_DESCRIPTIONS, Reason

_MESSAGES: dict[str, dict[Lang, str]] = {
    # Prompts (secrets are never echoed; see cli.prompts)
    "prompt_password": {
        Lang.EN: "Login password for {login}",
        Lang.JA: "{login} のログインパスワード",
    },
    "prompt_new_password": {
        Lang.EN: "New login password for {login}",
        Lang.JA: "{login} の新しいログインパスワード",
    },
    "prompt_new_confirmation": {
        Lang.EN: "New confirmation password for {login}",
        Lang.JA: "{login} の新しい確認用パスワード",
    },
    "prompt_repeat_password": {
        Lang.EN: "Repeat the new login password for {login}",
        Lang.JA: "{login} の新しいログインパスワード（もう一度）",
    },
    "prompt_repeat_confirmation": {
        Lang.EN: "Repeat the new confirmation password for {login}",
        Lang.JA: "{login} の新しい確認用パスワード（もう一度）",
    },
    "prompt_admin_confirmation": {
        Lang.EN: "Confirmation password of {login}",
        Lang.JA: "{login} の確認用パスワード",
    },
    "prompt_serial": {
        Lang.EN: "Serial number on the back of the token",
        Lang.JA: "トークン裏面のシリアル番号",
    },
    "prompt_otp": {
        Lang.EN: "One-time password shown on token {serial}",
        Lang.JA: "トークン {serial} に表示されているワンタイムパスワード",
    },
    "prompt_pskc_password": {
        Lang.EN: "Password of the PSKC file {file}",
        Lang.JA: "PSKC ファイル {file} のパスワード",
    },
    "prompt_psk": {
        Lang.EN: "Pre-shared key (hex) of the PSKC file {file}",
        Lang.JA: "PSKC ファイル {file} の事前共有鍵（16進数）",
    },
    # Progress bars (stderr, terminals only)
    "progress_pskc": {
        Lang.EN: "Reading and decrypting the PSKC file",
        Lang.JA: "PSKC ファイルを読み込み・復号中",
    },
    "progress_tokens": {
        Lang.EN: "Importing tokens",
        Lang.JA: "トークンを登録中",
    },
    "progress_users": {
        Lang.EN: "Importing users",
        Lang.JA: "利用者を登録中",
    },
    # Results
    "user_added": {
        Lang.EN: "Created user {login} ({name}, {user_class}).",
        Lang.JA: "利用者 {login}（{name}、{user_class}）を登録しました。",
    },
    "user_issued": {
        Lang.EN: "Issued a token to {login}: service starts on {start}; "
        "activation opens at {opens}.",
        Lang.JA: "{login} にトークンを発行しました"
        "（利用開始日 {start}、利用開始登録は {opens} から）。",
    },
    "login_password_set": {
        Lang.EN: "Set the login password of {login}.",
        Lang.JA: "{login} のログインパスワードを設定しました。",
    },
    "confirmation_password_set": {
        Lang.EN: "Set the confirmation password of {login}.",
        Lang.JA: "{login} の確認用パスワードを設定しました。",
    },
    "tokens_imported": {
        Lang.EN: "Imported {count} token(s) from {file}.",
        Lang.JA: "{file} から {count} 件のトークンを登録しました。",
    },
    "tokens_updated": {
        Lang.EN: "Imported {count} token(s) from {file}: {added} added, {updated} updated.",
        Lang.JA: "{file} から {count} 件のトークンを登録しました"
        "（新規 {added} 件、更新 {updated} 件）。",
    },
    "users_imported": {
        Lang.EN: "Imported {count} user(s) from {file}.",
        Lang.JA: "{file} から {count} 件の利用者を登録しました。",
    },
    "unconfirmed": {
        Lang.EN: "No confirmation password yet (set it with otpctl user passwd LOGIN "
        "--confirmation): {logins}",
        Lang.JA: "確認用パスワードが未設定です（otpctl user passwd LOGIN --confirmation で"
        "設定してください）: {logins}",
    },
    "users_updated": {
        Lang.EN: "Imported {count} user(s) from {file}: {added} added, {updated} updated.",
        Lang.JA: "{file} から {count} 件の利用者を登録しました"
        "（新規 {added} 件、更新 {updated} 件）。",
    },
    "soft_token_serial": {
        Lang.EN: "Serial number: {serial}",
        Lang.JA: "シリアル番号: {serial}",
    },
    "soft_token_uri": {
        Lang.EN: "URI: {uri}",
        Lang.JA: "URI: {uri}",
    },
    "soft_token_png": {
        Lang.EN: "QR code written to {file}",
        Lang.JA: "QR コードを {file} に書き出しました",
    },
    "token_disabled": {
        Lang.EN: "Disabled token {serial}.",
        Lang.JA: "トークン {serial} を無効にしました。",
    },
    "token_enabled": {
        Lang.EN: "Enabled token {serial}.",
        Lang.JA: "トークン {serial} を有効にしました。",
    },
    "token_disabled_already": {
        Lang.EN: "Token {serial} was already disabled: nothing changed.",
        Lang.JA: "トークン {serial} は既に無効です。変更はありません。",
    },
    "token_enabled_already": {
        Lang.EN: "Token {serial} was not disabled: nothing changed.",
        Lang.JA: "トークン {serial} は無効になっていません。変更はありません。",
    },
    "unlocked": {
        Lang.EN: "Lifted the one-time password suspension of these users:",
        Lang.JA: "以下の利用者に対して、ワンタイムパスワードの利用停止状態を解除しました。",
    },
    "nothing_unlocked": {
        Lang.EN: "None of the selected users (or their token's sharers) was suspended.",
        Lang.JA: "選択した利用者（同じシリアル番号の利用者を含む）に停止中の利用者はいません。",
    },
    "revoked": {
        Lang.EN: "Revoked the token of these users:",
        Lang.JA: "以下の利用者のトークンを失効しました。",
    },
    "deleted": {
        Lang.EN: "Deleted these users:",
        Lang.JA: "以下の利用者を削除しました。",
    },
    "tokens_deleted": {
        Lang.EN: "Deleted these tokens and their seeds:",
        Lang.JA: "以下のトークンをシード情報とともに削除しました。",
    },
}

_REASONS_JA: dict[Reason, str] = {
    Reason.OK: "パスワードとワンタイムパスワードを確認しました",
    Reason.PASSWORD_ONLY: "パスワードを確認しました（利用中のトークンはまだありません）",
    Reason.ACTIVATED: "利用開始登録が完了しました（トークンを登録しました）",
    Reason.OTP_CHALLENGE: "パスワードを確認しました。ワンタイムパスワードを求めています",
    Reason.SERIAL_CHALLENGE: "パスワードを確認しました。利用開始登録のシリアル番号を求めています",
    Reason.ACTIVATION_OTP_CHALLENGE: (
        "シリアル番号を受け付けました。ワンタイムパスワードを求めています"
    ),
    Reason.UNKNOWN_USER: "ログインIDが存在しません",
    Reason.BAD_PASSWORD: "ログインパスワードが違います（利用者に計数）",
    Reason.USER_SUSPENDED: "利用者が停止中です（パスワードまたは利用開始登録の連続失敗）",
    Reason.UNREGISTERED_REJECTED: "トークン未発行の利用者は拒否する設定です",
    Reason.TOKEN_SUSPENDED: "ワンタイムパスワード認証が停止中です（連続した誤入力）",
    Reason.TOKEN_DISABLED: "トークンが無効にされています",
    Reason.TOKEN_EXPIRED: "トークンの有効期限が切れています",
    Reason.BAD_OTP: "ワンタイムパスワードが違います（計数）",
    Reason.REPLAY: "使用済みのワンタイムパスワードです（計数）",
    Reason.MALFORMED_OTP: "ワンタイムパスワードの桁数が違います（計数）",
    Reason.BAD_SERIAL: "シリアル番号が不明、無効または有効期限切れです",
    Reason.BAD_STATE: "チャレンジが不明、使用済み、期限切れ、または他の利用者のものです",
    Reason.NOT_AWAITING_ACTIVATION: (
        "この利用者は利用開始登録の対象ではありません（トークン未発行、利用開始日前、または登録済み）"
    ),
    Reason.TOKEN_REVOKED: "認証の処理中にトークンが失効されました",
    Reason.PERIOD_CHANGED: "認証の処理中にトークンの時間間隔が変更されました（計数なし）",
    Reason.SEED_CHANGED: "認証の処理中にトークンのシードが置き換えられました（計数なし）",
    Reason.USER_CHANGED: (
        "認証の処理中に利用者のトークンまたは利用開始日が変更されました（計数なし）"
    ),
    Reason.PAP_REQUIRED: "CHAP/MS-CHAP は使えません（PAP のみ）",
    Reason.INVALID_REQUEST: "User-Name または User-Password がありません",
}


def say(lang: Lang, key: str, **fields: object) -> str:
    """The sentence ``key`` in ``lang`` with its fields filled in."""
    # A login or serial as given on the command line may hold anything: shown escaped.
    safe = {name: shown(v) if isinstance(v, str) else v for name, v in fields.items()}
    return _MESSAGES[key][lang].format(**safe)


def describe(reason: Reason, lang: Lang) -> str:
    """What a decision's reason means, for a person."""
    if lang is Lang.JA and reason in _REASONS_JA:
        return _REASONS_JA[reason]
    return REASON_DESCRIPTIONS.get(reason, reason.value)
