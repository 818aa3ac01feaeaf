"""Where the daemon's log lines go (SPEC §9: syslog or stderr)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from otpcore.config import LoggingConfig
from otpcore.logfields import field
from radiusd.logsetup import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_syslog_without_its_socket_says_where_the_lines_go_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-syslog-here")
    setup_logging(LoggingConfig(syslog=True, facility="authpriv", level="info"),
                  syslog_socket=missing)  # fmt: skip
    logging.getLogger("otpradius.test").info("auth result=accept")
    err = capsys.readouterr().err
    assert f"syslog = true but {missing} does not exist: logging to stderr" in err
    assert "auth result=accept" in err


def test_stderr_chosen_in_the_file_is_not_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(LoggingConfig(syslog=False, facility="authpriv", level="info"),
                  syslog_socket=str(tmp_path / "none"))  # fmt: skip
    assert "does not exist" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("alice", "alice"),
        (None, "-"),
        ("", "-"),
        # A Japanese login reads, and greps, as typed.
        ("山田", "山田"),
        ("データ 花子", '"データ 花子"'),
        ("chirodt@銀行", "chirodt@銀行"),
        # Whatever could break the line, or hide what it says, stays escaped.
        ("a b", '"a b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
        ("tab\there", '"tab\\there"'),
        ("\u202eevil", '"\\u202eevil"'),
        ("wide\u3000space", '"wide\\u3000space"'),
        ("nul\x00", '"nul\\x00"'),
    ],
)
def test_a_log_value_keeps_printable_text_and_escapes_the_rest(
    value: str | None, shown: str
) -> None:
    assert field(value) == shown
