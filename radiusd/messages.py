"""Reply-Message texts in English and Japanese; a Reject never says which factor failed."""

from __future__ import annotations

from otpcore.model import Reason, Result, Stage

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "accept": "Authentication succeeded.",
        "activated": "Your token is registered. From now on, log in with your password and OTP.",
        "reject": "Authentication failed.",
        "pap_required": "Authentication failed: this server accepts PAP only.",
        "otp": "Enter the one-time password shown on your token.",
        "serial": "Enter the serial number printed on the back of your token.",
        "activation_otp": "Enter the one-time password shown on token {serial}.",
    },
    "ja": {
        "accept": "認証に成功しました。",
        "activated": "ワンタイムパスワードの利用開始登録が完了しました。"
        "以降はパスワードとワンタイムパスワードでログインしてください。",
        "reject": "認証に失敗しました。",
        "pap_required": "認証に失敗しました。このサーバはPAPのみに対応しています。",
        "otp": "トークンに表示されているワンタイムパスワードを入力してください。",
        "serial": "トークン裏面に記載のシリアル番号を入力してください。",
        "activation_otp": "トークン {serial} に表示されている"
        "ワンタイムパスワードを入力してください。",
    },
}


def reply_text(
    language: str, result: Result, reason: Reason, prompt: Stage | None, serial: str | None
) -> str:
    """The Reply-Message for an outcome, in the configured language."""
    texts = _TEXTS.get(language, _TEXTS["en"])
    if result is Result.ACCEPT:
        return texts["activated"] if reason is Reason.ACTIVATED else texts["accept"]
    if result is Result.CHALLENGE:
        if prompt is Stage.ACTIVATION_SERIAL:
            return texts["serial"]
        if prompt is Stage.ACTIVATION_OTP:
            return texts["activation_otp"].format(serial=serial or "")
        return texts["otp"]
    if reason is Reason.PAP_REQUIRED:
        return texts["pap_required"]
    return texts["reject"]
