"""What the otpctl tests share: a configuration, a runner, result checks, fresh TOTP codes."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.conftest import FAST_HASHING, require_command

PERIOD = 30
Otpctl = Callable[..., Result]


def config_text(**policy: object) -> str:
    """A configuration with cheap hashing, as tests/conftest.py uses."""
    hashing = "\n".join(f"{key} = {value}" for key, value in FAST_HASHING.items())
    extra = "\n".join(f"{key} = {json.dumps(value)}" for key, value in policy.items())
    return (
        f"[hashing]\n{hashing}\n\n[policy]\nreject_delay = 0\n{extra}\n\n"
        "[logging]\nsyslog = false\n\n"
        '[[clients]]\nname = "local"\naddress = "127.0.0.1/32"\nsecret = "testing123-secret"\n'
    )


def write_config(folder: Path, extra: str = "") -> Path:
    """``folder/config.toml`` from ``config_text()`` plus ``extra``; database and key go beside."""
    path = folder / "config.toml"
    path.write_text(config_text() + extra, encoding="utf-8")
    return path


def otpctl_runner(config: Path) -> Otpctl:
    """Run otpctl in-process with ``--config`` and English labels unless a test says otherwise."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        environment: dict[str, str | None] = {
            "LANG": "C.UTF-8",
            "OTPRADIUS_CONFIG": None,
            "OTPRADIUS_DEBUG": None,
        }
        environment.update(env or {})
        return runner.invoke(cli, ["--config", str(config), *args], input=input, env=environment)

    return run


def otpctl_program() -> list[str]:
    """The installed console script, beside this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("otpctl")
    found = str(beside) if beside.exists() else shutil.which("otpctl")
    if found is None:
        pytest.fail("otpctl is not installed: pip install -e .")
    return [found]


STREAMS = ("stdin", "stdout", "stderr")


def run_on_terminal(
    args: Sequence[str],
    config: Path,
    *,
    on: Collection[str] = ("stdin", "stdout", "stderr"),
    answers: Sequence[tuple[str, str]] = (),
) -> tuple[int, str]:
    """Run the installed otpctl with the streams named in ``on`` on a pseudo-terminal, typing
    each answer once its prompt shows; (exit status, what the terminal showed)."""
    leader, follower = pty.openpty()
    streams = {name: follower if name in on else subprocess.DEVNULL for name in STREAMS}
    env = {**os.environ, "OTPRADIUS_CONFIG": str(config), "LANG": "C.UTF-8"}
    process = subprocess.Popen([*otpctl_program(), *args], env=env, **streams)
    os.close(follower)
    shown = bytearray()
    pending = list(answers)
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        text = shown.decode("utf-8", "replace").rstrip()
        if pending and text.endswith(pending[0][0] + ":"):
            os.write(leader, pending.pop(0)[1].encode() + b"\n")
    os.close(leader)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


def today() -> str:
    """The UTC date, the one the start date is compared with."""
    return datetime.now(UTC).date().isoformat()


def ok(result: Result) -> Result:
    """The result, after checking the command succeeded."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result


def as_json(result: Result) -> Any:
    """The JSON a successful command printed."""
    return json.loads(ok(result).stdout)


def failed(result: Result, code: int) -> str:
    """The one-line error of a failed command."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("otpctl: error: ")
    return lines[0]


class Codes:
    """Fresh TOTP codes for the wall clock: never a step already used on the same token.

    The window accepts the next step too, so a second code within one step is the next
    step's; no code is computed in the last seconds of a step, so otpctl checks it in the
    step it was computed in.
    """

    def __init__(self, secrets: dict[str, bytes], period: int = PERIOD) -> None:
        self.secrets = secrets
        self.period = period
        self.used: dict[str, int] = {}

    def at(self, serial: str, step: int) -> str:
        """The code of ``serial`` at time step ``step`` (pyotp's)."""
        key = base64.b32encode(self.secrets[serial]).decode()
        return pyotp.TOTP(key, interval=self.period).at(step * self.period)

    def fresh(self, serial: str) -> str:
        """A code otpctl will accept now for ``serial``."""
        while True:
            now = time.time()
            step = int(now) // self.period
            wanted = max(step, self.used.get(serial, -1) + 1)
            if (step + 1) * self.period - now >= 5 and wanted <= step + 1:
                break
            time.sleep((step + 1) * self.period - now + 0.1)
        self.used[serial] = wanted
        return self.at(serial, wanted)

    def wrong(self, serial: str) -> str:
        """A code that matches no step near now."""
        step = int(time.time()) // self.period
        near = {self.at(serial, s) for s in range(step - 3, step + 4)}
        return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


class OathtoolCodes(Codes):
    """The same, computed by oathtool (an independent TOTP implementation)."""

    def __init__(self, secrets: dict[str, bytes], period: int = PERIOD) -> None:
        super().__init__(secrets, period)
        self.path = require_command("oathtool")

    def at(self, serial: str, step: int) -> str:
        """oathtool's code of ``serial`` for time step ``step``."""
        out = subprocess.run(
            [
                self.path,
                "--totp",
                "-s",
                f"{self.period}s",
                "-N",
                f"@{step * self.period}",
                self.secrets[serial].hex(),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()
