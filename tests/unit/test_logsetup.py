"""Where the daemon's log lines go (SPEC §9: syslog or stderr)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from otpcore.attempts import AuthOutcome
from otpcore.client_config import ClientConfig
from otpcore.config import LoggingConfig
from otpcore.logfields import decision_line, field
from otpcore.model import InputMode, Reason, Result
from radiusd import held_lines
from radiusd.handler import log_decision
from radiusd.logsetup import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
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


def stale_socket(path: Path, kind: socket.SocketKind) -> None:
    """A socket file at ``path`` that nothing listens on (its syslog daemon died)."""
    with socket.socket(socket.AF_UNIX, kind) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize("left", ["datagram socket", "stream socket", "regular file"])
def test_syslog_socket_nobody_listens_on_says_so_once_and_logs_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], left: str
) -> None:
    # Every line was lost, each replaced on stderr by logging's "--- Logging error ---" and a
    # traceback of some thirty lines, and nothing said where the log had gone.
    path = tmp_path / "log"
    if left == "regular file":
        path.write_text("")
    else:
        stale_socket(path, socket.SOCK_DGRAM if left == "datagram socket" else socket.SOCK_STREAM)
    setup_logging(LoggingConfig(syslog=True, facility="authpriv", level="info"),
                  syslog_socket=str(path))  # fmt: skip
    logging.getLogger("otpradius.test").info("auth result=accept")
    logging.getLogger("otpradius.test").info("auth result=reject")
    err = capsys.readouterr().err
    warning = f"syslog = true but {path} does not answer (Connection refused): logging to stderr"
    assert err.count(warning) == 1
    assert "auth result=accept" in err
    assert "auth result=reject" in err
    assert "Traceback" not in err
    assert "Logging error" not in err


def test_syslog_that_stops_after_start_sends_lines_to_stderr_until_it_is_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # syslogd dying under the running server turned every later line into a traceback, and
    # the line itself was lost.
    path = tmp_path / "log"
    syslogd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslogd.bind(str(path))
    syslogd.settimeout(2)
    setup_logging(LoggingConfig(syslog=True, facility="authpriv", level="info"),
                  syslog_socket=str(path))  # fmt: skip
    log = logging.getLogger("otpradius.test")
    log.info("auth result=accept")
    assert b"auth result=accept" in syslogd.recv(4096)
    syslogd.close()  # the socket file stays, as a dead syslogd leaves it
    log.info("auth result=reject")
    log.info("drop reason=unknown_client")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Logging error" not in err
    stopped = f"syslog {path} does not answer (Connection refused): logging to stderr"
    assert err.count(stopped) == 1
    assert "auth result=reject" in err
    assert "drop reason=unknown_client" in err
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as again:
        again.bind(str(path))
        again.settimeout(2)
        log.info("auth result=challenge")
        received = [again.recv(4096), again.recv(4096)]
    back = f"syslog {path} answers again; 2 lines went to stderr meanwhile"
    assert any(b"auth result=challenge" in line for line in received)
    assert any(back.encode() in line for line in received)
    err = capsys.readouterr().err
    assert back in err
    assert "auth result=challenge" not in err


def received(syslogd: socket.socket) -> list[str]:
    """Every line waiting at the syslog daemon's socket, after the sinks sent what they held."""
    lines: list[str] = []
    while True:
        held_lines.send_held()
        try:
            lines.append(syslogd.recv(4096).decode())
        except BlockingIOError:
            held_lines.send_held()
            try:
                lines.append(syslogd.recv(4096).decode())
            except BlockingIOError:
                return lines


def test_a_syslog_daemon_that_stops_reading_never_holds_up_the_thread_that_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once ten lines were queued the next one waited for the daemon for ever: the packet loop
    # logs every decision, so logins stopped, and the supervisor killed worker after worker
    # as hung until the server stopped.
    monkeypatch.setattr(held_lines, "HELD_LINES", 100)
    path = tmp_path / "log"
    syslogd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslogd.bind(str(path))
    syslogd.setblocking(False)
    setup_logging(LoggingConfig(syslog=True, facility="authpriv", level="info"),
                  syslog_socket=str(path))  # fmt: skip
    log = logging.getLogger("otpradius.test")
    logger = threading.Thread(
        target=lambda: [log.info("auth n=%d", n) for n in range(300)], daemon=True
    )
    logger.start()
    logger.join(timeout=10)
    assert not logger.is_alive(), "logging waited for a syslog daemon that reads nothing"
    lines = received(syslogd)  # the daemon reads again
    numbers = [int(m.group(1)) for line in lines if (m := re.search(r"auth n=(\d+)", line))]
    taken = len(numbers)
    assert numbers == list(range(taken))  # in order, none twice, the first ones kept
    assert taken >= 100  # what the socket queued, and the hundred held
    assert any(f"took no lines for a while: {300 - taken} dropped" in line for line in lines)
    log.info("auth n=last")
    assert any("auth n=last" in line for line in received(syslogd))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Logging error" not in err
    syslogd.close()


def test_a_stream_syslog_daemon_that_stops_reading_never_holds_up_the_thread_that_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A /dev/log of the stream kind (syslog-ng's unix-stream source) was written to blocking:
    # once its buffer was full the next decision's line waited for the daemon for ever.
    monkeypatch.setattr(held_lines, "HELD_LINES", 100)
    path = tmp_path / "log"
    syslogd = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    syslogd.bind(str(path))
    syslogd.listen(4)
    setup_logging(LoggingConfig(syslog=True, facility="authpriv", level="info"),
                  syslog_socket=str(path))  # fmt: skip
    log = logging.getLogger("otpradius.test")
    logger = threading.Thread(
        target=lambda: [log.info("auth n=%d %s", n, "x" * 80) for n in range(5000)], daemon=True
    )
    logger.start()
    logger.join(timeout=10)
    assert not logger.is_alive(), "logging waited for a syslog daemon that reads nothing"
    syslogd.setblocking(False)
    connections = []  # the probe that found the socket's kind, then the sink's
    with contextlib.suppress(BlockingIOError):
        while True:
            connections.append(syslogd.accept()[0])
    data = b""
    quiet = 0
    while quiet < 2:  # the daemon reads again
        held_lines.send_held()
        quiet += 1
        for connection in connections:
            with contextlib.suppress(BlockingIOError):
                while chunk := connection.recv(65536, socket.MSG_DONTWAIT):
                    data += chunk
                    quiet = 0
    lines = data.decode().split("\0")
    numbers = [int(m.group(1)) for line in lines if (m := re.search(r"auth n=(\d+) ", line))]
    taken = len(numbers)
    assert numbers == list(range(taken))  # in order, none twice, none cut, the first ones kept
    assert all(line.endswith("x" * 80) for line in lines if "auth n=" in line)
    assert 100 <= taken < 5000  # what the socket queued, and the hundred held
    assert any(f"took no lines for a while: {5000 - taken} dropped" in line for line in lines)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Logging error" not in err
    for connection in connections:
        connection.close()
    syslogd.close()


@pytest.fixture
def stalled_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """stderr as a pipe of 16 KiB whose reader reads nothing until asked to, and the daemon's
    logging set up to write there; the pipe's read end."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 16384)
    os.set_blocking(read_end, False)
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging(LoggingConfig(syslog=False, facility="authpriv", level="info"))
    yield read_end
    for handler in logging.getLogger().handlers:
        handler.close()
    stream.close()
    os.close(read_end)


def drained(read_end: int) -> list[str]:
    """Every line the reader reads once it reads again, after the sinks wrote what they held."""
    data = b""
    quiet = 0
    while quiet < 2:
        held_lines.send_held()
        try:
            data += os.read(read_end, 65536)
            quiet = 0
        except BlockingIOError:
            quiet += 1
    return data.decode().splitlines()


def log_from_a_thread(lines: int) -> threading.Thread:
    """Log ``lines`` decisions from a thread of their own, as the packet loop does; joined."""
    log = logging.getLogger("otpradius.test")

    def run() -> None:
        for n in range(lines):
            log.info("auth result=accept n=%d %s", n, "x" * 80)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    return thread


def test_a_stderr_reader_that_stops_reading_never_holds_up_the_thread_that_logs(
    stalled_reader: int,
) -> None:
    # Under systemd stderr is journald's stream socket: once journald stalled and the buffer
    # filled, the next decision's line waited for it for ever, and with it the packet loop.
    assert not log_from_a_thread(600).is_alive(), "logging waited for a stderr nobody reads"
    lines = drained(stalled_reader)
    numbers = [int(m.group(1)) for line in lines if (m := re.search(r" n=(\d+) ", line))]
    assert numbers == list(range(600))  # every line, in order, none twice, none cut
    assert all(line.endswith("x" * 80) for line in lines)


def test_a_stderr_reader_stalled_past_the_hold_gets_the_count_of_lines_dropped(
    stalled_reader: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(held_lines, "HELD_LINES", 50)
    assert not log_from_a_thread(600).is_alive(), "logging waited for a stderr nobody reads"
    lines = drained(stalled_reader)
    numbers = [int(m.group(1)) for line in lines if (m := re.search(r" n=(\d+) ", line))]
    taken = len(numbers)
    assert numbers == list(range(taken))  # the first ones kept, in order
    assert 50 <= taken < 600  # what the pipe queued, and the fifty held
    assert any(f"stderr took no lines for a while: {600 - taken} dropped" in line
               for line in lines)  # fmt: skip


def test_a_stopping_process_gives_a_slow_stderr_reader_its_held_lines(
    stalled_reader: int,
) -> None:
    assert not log_from_a_thread(300).is_alive(), "logging waited for a stderr nobody reads"
    (sink,) = [h for h in logging.getLogger().handlers if h.__module__.startswith("radiusd")]
    data = b""
    closer = threading.Thread(target=sink.close)
    closer.start()
    while True:  # the reader reads again, slowly, while the process stops
        done = not closer.is_alive()
        try:
            data += os.read(stalled_reader, 65536)
        except BlockingIOError:
            if done:
                break
        time.sleep(0.01)
    assert data.decode().count("auth result=accept") == 300


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


def test_the_daemon_writes_the_decision_line_of_spec_9(caplog: pytest.LogCaptureFixture) -> None:
    # Built once for both shells (otpctl check logs it too); a "%" in a login stays as typed.
    client = ClientConfig(name="vpn-gw-1", networks=(), secret=b"s" * 16, mode=InputMode.SPLIT)
    outcome = AuthOutcome(Result.REJECT, Reason.BAD_OTP, "100%s-off%d", "23456789")
    with caplog.at_level(logging.INFO, logger="otpradius.auth"):
        log_decision(outcome, client, "192.0.2.10", time.perf_counter())
    (line,) = [record.getMessage() for record in caplog.records]
    assert re.fullmatch(
        r"auth result=reject reason=bad_otp user=100%s-off%d client=vpn-gw-1 src=192\.0\.2\.10 "
        r"mode=split serial=23456789 ms=\d+\.\d",
        line,
    )


def test_a_login_answered_again_is_told_by_resent_at_the_end_of_its_line() -> None:
    outcome = AuthOutcome(Result.ACCEPT, Reason.OK, "taro", "23456789", resent=True)
    line = decision_line(outcome, "vpn-gw-1", "192.0.2.10", "split", 0.25)
    assert line == (
        "auth result=accept reason=ok user=taro client=vpn-gw-1 src=192.0.2.10 mode=split "
        "serial=23456789 ms=0.2 resent=1"
    )
    first = decision_line(replace(outcome, resent=False), "vpn-gw-1", "192.0.2.10", "split", 0.25)
    assert first == line.removesuffix(" resent=1")
