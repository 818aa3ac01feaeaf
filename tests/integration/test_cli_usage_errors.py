"""A wrong command line, and a check that does not accept, end in one line on stderr (SPEC §5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli_support import (
    Otpctl,
    as_json,
    failed,
    ok,
    otpctl_program,
    otpctl_runner,
    write_config,
)


@pytest.fixture
def ready(tmp_path: Path) -> Otpctl:
    otpctl = otpctl_runner(write_config(tmp_path))
    ok(otpctl("init"))
    ok(otpctl("user", "add", "taro", "--name", "Taro", "--class", "general",
              "--password-stdin", input="taro-pw-1\n"))  # fmt: skip
    return otpctl


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("user", "issue", "taro", "--start", "2026-13-01"), "'--start'"),
        (("user", "issue", "taro"), "'--start'"),
        (("unlock", "taro"), "'--admin'"),
        (("user", "add", "jiro", "--name", "J", "--class", "boss"), "'--class'"),
        (("user", "frobnicate"), "'frobnicate'"),
        (("--no-such-option", "user", "list"), "--no-such-option"),
        # Past year 9999: the horizon's date overflowed into a traceback-like "bug" line.
        (("token", "list", "--expiring-within", "99999999999"), "'--expiring-within'"),
    ],
)
def test_a_wrong_command_line_is_one_line_naming_what_is_wrong(
    ready: Otpctl, args: tuple[str, ...], named: str
) -> None:
    line = failed(ready(*args), 2)
    assert named in line
    assert "--help" in line  # and where to look for the right form


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "issue", "taro", "--start", "2026-02-30"), "'2026-02-30' is not a day of"),
        (("user", "issue", "taro", "--start", "2026-2-3"), "'2026-2-3' is not a date written"),
        (("audit", "--since", "2026-13-01"), "'2026-13-01' is not a day of the calendar"),
        (("audit", "--since", "yesterday"), "'yesterday' is not a date written YYYY-MM-DD"),
    ],
)
def test_a_wrong_date_is_told_from_a_wrong_form(
    ready: Otpctl, args: tuple[str, ...], message: str
) -> None:
    # click's own type said "does not match the format '%Y-%m-%d'" of 2026-02-30, which does:
    # it is February that has no 30th.
    assert message in failed(ready(*args), 2)
    assert as_json(ready("user", "show", "taro", "--json"))["state"] == "unregistered"


@pytest.mark.parametrize(
    ("command", "spelled"),
    [
        (("unlock",), ["unlock [OPTIONS] LOGIN...", "--admin ADMIN"]),
        (("revoke",), ["revoke [OPTIONS] LOGIN...", "--admin ADMIN"]),
        (("user", "delete"), ["user delete [OPTIONS] LOGIN...", "--admin ADMIN"]),
        (("token", "delete"), ["token delete [OPTIONS] SERIAL...", "--admin ADMIN"]),
        (("user", "add"), ["--name NAME"]),
        (("user", "issue"), ["--start YYYY-MM-DD"]),
        (("token", "enroll-soft"), ["--serial SERIAL"]),
    ],
)
def test_the_help_spells_arguments_as_spec_does(
    ready: Otpctl, command: tuple[str, ...], spelled: list[str]
) -> None:
    # SPEC §5 is the form operators' scripts are written from: 'LOGINS...', '--admin TEXT'
    # and '--start [%Y-%m-%d]' named what to give in words found nowhere else.
    usage = ok(ready(*command, "--help")).stdout
    for text in spelled:
        assert text in usage


def test_a_missing_login_is_named_as_spec_names_it(ready: Otpctl) -> None:
    line = failed(ready("unlock", "--admin", "chiroadm"), 2)
    assert "Missing argument 'LOGIN...'" in line


def test_config_after_the_command_says_where_it_goes(ready: Otpctl, tmp_path: Path) -> None:
    # The usual slip: --config is the group's option (SPEC §5). "No such option" and a pointer
    # to the help of 'user list', which does not mention it, left the operator no wiser.
    config = str(tmp_path / "config.toml")
    line = failed(ready("user", "list", "--config", config), 2)
    assert line.startswith("otpctl: error: No such option '--config': it goes before the command")
    assert line.endswith(" --config PATH user list'")  # the runner's name for otpctl before it
    line = failed(ready("unlock", "--config", config, "--admin", "a", "b"), 2)
    assert line.endswith(" --config PATH unlock'")


def test_a_command_group_alone_still_shows_its_help(ready: Otpctl) -> None:
    result = ready("user")
    assert "issue" in result.output
    assert "import" in result.output


def test_the_installed_command_names_itself_in_the_pointer(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = subprocess.run(
        [*otpctl_program(), "--config", str(config), "user", "issue", "taro"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("otpctl: error: Missing option '--start'")
    assert "(see 'otpctl user issue --help')" in done.stderr


def test_the_installed_command_says_where_config_goes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = subprocess.run(
        [*otpctl_program(), "user", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "otpctl: error: No such option '--config': it goes before the command, "
        "as in 'otpctl --config PATH user list'\n"
    )


LATIN1 = "t\udce1ro"  # "tåro" typed on a Latin-1 terminal, as Python decodes such an argv


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("user", "show", LATIN1), "'LOGIN'"),
        (("user", "add", LATIN1, "--name", "T", "--class", "general"), "'LOGIN'"),
        (("user", "add", "jiro", "--name", LATIN1, "--class", "general"), "'--name'"),
        (("activate", "taro", LATIN1), "'SERIAL'"),
        (("token", "disable", LATIN1), "'SERIAL'"),
        (("token", "enroll-soft", "--serial", LATIN1), "'--serial'"),
        (("unlock", "--admin", LATIN1, "taro"), "'--admin'"),
        (("revoke", "--admin", "chiroadm", "taro", LATIN1), "'LOGIN...'"),
        (("token", "delete", "--admin", "chiroadm", LATIN1), "'SERIAL...'"),
    ],
)
def test_an_argument_in_another_encoding_is_refused_before_anything_is_asked(
    ready: Otpctl, args: tuple[str, ...], named: str
) -> None:
    line = failed(ready(*args), 2)
    assert f"Invalid value for {named}: is not UTF-8 text" in line
    assert "Password" not in line  # refused before any prompt


def test_the_installed_command_refuses_an_argument_in_another_encoding(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = subprocess.run(
        [*otpctl_program(), "--config", str(config), "user", "show", b"t\xe5ro"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(b"otpctl: error: Invalid value for 'LOGIN': is not UTF-8 text")
    assert done.stderr.count(b"\n") == 1, done.stderr


def test_a_secret_in_another_encoding_is_refused_without_showing_it(ready: Otpctl) -> None:
    result = ready("user", "passwd", "taro", "--password-stdin", input=b"p\xe5ss-word-1\n")
    line = failed(result, 2)
    assert line == (
        "otpctl: error: the answer to 'New login password for taro' is not UTF-8 text "
        "(is the terminal or the script set to another encoding?)"
    )
    assert "ss-word" not in result.output


def installed(
    config: Path, *args: str | bytes, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """The installed otpctl, arguments as bytes where a test needs them, in a C.UTF-8 locale."""
    env = {k: v for k, v in os.environ.items() if k not in {"OTPRADIUS_DEBUG", "LC_ALL"}}
    return subprocess.run(
        [*otpctl_program(), "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        check=False,
        env={**env, "LANG": "C.UTF-8"},
    )


def test_a_piped_answer_in_another_encoding_is_refused_without_showing_it(
    tmp_path: Path, ready: Otpctl
) -> None:
    """Piped without --password-stdin: Python decodes such bytes without complaint, here."""
    done = installed(tmp_path / "config.toml", "user", "passwd", "taro", stdin=b"p\xe5ss-word-1\n")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        b"otpctl: error: the answer to 'New login password for taro' is not UTF-8 text "
        b"(is the terminal or the script set to another encoding?)"
    )
    assert b"ss-word" not in done.stdout + done.stderr


def test_a_seed_file_named_in_shift_jis_imports_under_a_printable_name(
    tmp_path: Path, ready: Otpctl
) -> None:
    """A file saved on a Windows share keeps its Shift_JIS name (トークン.csv here)."""
    name = os.fsencode(tmp_path) + b"/\x83g\x81[\x83N\x83\x93.csv"
    with open(name, "w", encoding="utf-8") as seeds:
        seeds.write(f"serial,secret\n10000001,{bytes(range(7, 27)).hex()}\n")
    done = installed(tmp_path / "config.toml", "token", "import", name)
    shown = os.fsdecode(tmp_path) + "/\\x83g\\x81[\\x83N\\x83\\x93.csv"
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"Imported 1 token(s) from {shown}.\n"
    (event,) = [e for e in as_json(ready("audit", "--json")) if e["action"] == "token_import"]
    assert event["detail"] == f"{shown}: 1 added, 0 updated"


def test_a_backup_to_a_name_in_another_encoding_is_refused_before_any_copy(
    tmp_path: Path, ready: Otpctl
) -> None:
    target = os.fsencode(tmp_path) + b"/\x83o\x83b\x83N.db"
    done = installed(tmp_path / "config.toml", "db", "backup", target)
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(b"a file name that is not UTF-8 is refused\n")
    assert done.stderr.count(b"\n") == 1
    # Shown with its bytes as an import shows them, not as Python's surrogates (\udc83).
    assert b"/\\x83o\\x83b\\x83N.db" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["otpradius.db"]


def test_a_check_that_rejects_says_so_on_stderr_and_keeps_the_result_on_stdout(
    ready: Otpctl,
) -> None:
    result = ready("check", "taro", "--json", "--password-stdin", input="wrong\n")
    assert failed(result, 1) == "otpctl: error: taro was not accepted (reject)"
    assert '"result": "reject"' in result.stdout


def test_ctrl_c_at_a_prompt_is_one_line_and_status_130(tmp_path: Path, ready: Otpctl) -> None:
    """Not click's "Aborted!" with status 1, which a script would read as a rejecting check."""
    env = {k: v for k, v in os.environ.items() if k not in {"OTPRADIUS_DEBUG", "LC_ALL"}}
    program = [*otpctl_program(), "--config", str(tmp_path / "config.toml")]
    with subprocess.Popen(
        [*program, "check", "taro"],
        stdin=subprocess.PIPE,  # held open: the prompt waits for a line that never comes
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**env, "LANG": "C.UTF-8"},
    ) as process:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        seen = b""
        while b"assword" not in seen and time.monotonic() < deadline:
            seen += process.stderr.read1(256)
        assert b"assword" in seen, seen
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 130
    assert (seen + rest).splitlines()[-1] == (
        b"otpctl: error: interrupted (Ctrl-C, or standard input closed at a prompt)"
    )


# Sends SIGINT to itself as click starts to load, as a Ctrl-C typed in the first second does.
# Ctrl-C as a terminal delivers it: the runner's own signal state (a mask or SIG_IGN, which a
# child inherits) once made the SIGINT below vanish and the command print its help.
_INTERRUPTED_WHILE_LOADING = """
import builtins, os, signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
load = builtins.__import__
def loading(name, *args, **kwargs):
    if name == "click":
        os.kill(os.getpid(), signal.SIGINT)
    return load(name, *args, **kwargs)
builtins.__import__ = loading
sys.argv = ["otpctl", "--help"]
from cli.entry import main
main()
"""


def test_ctrl_c_while_otpctl_loads_is_one_line_and_status_130() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_WHILE_LOADING],
        capture_output=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == (
        b"otpctl: error: interrupted (Ctrl-C, or standard input closed at a prompt)\n"
    )
    assert done.stdout == b""


def test_input_closed_at_a_prompt_is_one_line_and_status_130(tmp_path: Path, ready: Otpctl) -> None:
    done = installed(tmp_path / "config.toml", "check", "taro", stdin=b"")
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == (
        b"otpctl: error: interrupted (Ctrl-C, or standard input closed at a prompt)"
    )


def test_a_prompt_without_a_terminal_shows_no_python_warning(tmp_path: Path, ready: Otpctl) -> None:
    # A script (cron, CI) with no terminal and no --password-stdin: getpass reads the pipe,
    # but its GetPassWarning put two lines of Python, a source path among them, on stderr.
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(tmp_path / "config.toml"),
         "check", "taro", "--json"],
        input=b"taro-pw-1\n",
        capture_output=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # no controlling terminal, as under cron
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"getpass" not in done.stderr
    assert b"GetPassWarning" not in done.stderr


def test_python_m_cli_main_runs_otpctl(tmp_path: Path) -> None:
    # As `python3 -m radiusd.main` runs the daemon from a checkout: without its own entry
    # point the module ran nothing and exited 0, so an `init` "succeeded" having made nothing.
    config = write_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(config), "init"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "Created the database schema" in done.stdout
