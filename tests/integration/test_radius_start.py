"""Starting otp-radiusd: what it refuses, and the one line that says why (SPEC §8)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otpcore.keys import create_key
from radiusd.wire import Codes
from tests.integration.daemon import REPO_ROOT, Node, Site

START_TIMEOUT_S = 20.0


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def run_daemon(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``otp-radiusd`` on ``node``'s configuration; it must exit by itself, and soon."""
    command = [sys.executable, "-m", "radiusd.main", "--config", str(node.config_path)]
    with subprocess.Popen(
        [*command, "--stderr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # It is serving: take its workers down with it, then fail.
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise AssertionError("otp-radiusd kept running instead of exiting") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_a_second_server_on_the_same_port_is_refused_and_the_first_keeps_all_logins(
    site: Site,
) -> None:
    users = [site.active_user() for _ in range(3)]
    with site.node() as node:
        second = run_daemon(node)
        assert second.returncode == 69, second.stderr
        assert second.stderr.splitlines() == [
            f"otp-radiusd: error: [server] listen 127.0.0.1:{node.port}: address already in use "
            "(is another otp-radiusd or RADIUS server running?)"
        ]
        # The logins still reach the first server, which alone holds the port.
        with node.client() as client:
            for user in users:
                reply = client.auth(user.login, user.password + user.bound.code())
                assert reply is not None
                assert reply.code == Codes.ACCESS_ACCEPT


def test_check_passes_beside_the_running_server(site: Site) -> None:
    with site.node() as node:
        checked = run_daemon(node, "--check")
        assert checked.returncode == 0, checked.stderr
        assert "configuration, key file and database are usable" in checked.stdout


def test_a_port_held_by_another_program_is_refused(site: Site) -> None:
    node = site.node()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(node.address)
        refused = run_daemon(node)
    assert refused.returncode == 69
    assert f"[server] listen 127.0.0.1:{node.port}: address already in use" in refused.stderr


@pytest.mark.parametrize(
    ("host", "endpoint", "reason"),
    [
        # TEST-NET-1 (RFC 5737) is never assigned to a local interface.
        ("192.0.2.1", "192.0.2.1", "Cannot assign requested address"),
        # A link-local address on an interface the host lacks (a typo of eth0).
        ("fe80::1%eht0", "[fe80::1%eht0]", "this host has no interface eht0"),
    ],
)
def test_an_address_not_on_this_host_is_refused_by_name(
    site: Site, host: str, endpoint: str, reason: str
) -> None:
    """At start, and by --check before it (which tries the address, never the port)."""
    node = site.node()
    node.hosts = (host,)
    node.write_config()
    for args in ([], ["--check"]):
        refused = run_daemon(node, *args)
        assert refused.returncode == 69
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: [server] listen {endpoint}:{node.port}: cannot bind: {reason}"
        ]


def test_a_configuration_error_names_the_key_and_exits_78(site: Site) -> None:
    node = site.node()
    node.config_path.write_text(
        node.config_path.read_text(encoding="utf-8").replace("workers = 1", "workers = -1"),
        encoding="utf-8",
    )
    refused = run_daemon(node)
    assert refused.returncode == 78
    assert refused.stderr.splitlines() == [
        f"otp-radiusd: error: {node.config_path}: [server] workers: must be from 0 to 256"
    ]


def test_a_configuration_others_may_read_with_a_secret_in_it_is_warned_about(site: Site) -> None:
    node = site.node()
    node.config_path.chmod(0o644)
    warned = run_daemon(node, "--check")
    assert warned.returncode == 0, warned.stderr
    assert "readable secrets" in warned.stderr
    assert f"clients={node.client_spec.name}" in warned.stderr
    assert node.client_spec.secret not in warned.stderr
    node.config_path.chmod(0o640)
    quiet = run_daemon(node, "--check")
    assert quiet.returncode == 0, quiet.stderr
    assert "readable secrets" not in quiet.stderr
    # A start that fails says only why, in its one line.
    node.config_path.chmod(0o644)
    node.config_path.write_text(
        node.config_path.read_text(encoding="utf-8").replace("workers = 1", "workers = -1"),
        encoding="utf-8",
    )
    assert len(run_daemon(node).stderr.splitlines()) == 1


def test_a_configuration_others_may_change_is_refused_at_check_and_start(site: Site) -> None:
    node = site.node()
    node.config_path.chmod(0o666)  # anyone could add a client in mode "otp", or swap the database
    expected = [
        f"otp-radiusd: error: {node.config_path}: writable by group or others (mode 0666), who "
        "could add a client or swap the database; chmod 640 it"
    ]
    for args in (["--check"], []):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == expected


OPEN_DATABASE = {
    0o666: "writable by others (mode 0666), who could change any password, binding or counter",
    0o644: "readable by others (mode 0644), who could read its password hashes and hold up every "
    "commit",
}


@pytest.mark.parametrize("mode", list(OPEN_DATABASE), ids=["writable", "readable"])
def test_a_database_file_open_to_others_is_refused_at_check_and_start(
    site: Site, mode: int
) -> None:
    database = site.directory / "otpradius.db"
    node = site.node()
    database.chmod(mode)
    for args in (["--check"], []):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {database}: {OPEN_DATABASE[mode]}; chmod 600 it"
        ]
    database.chmod(0o640)  # the service's group may read it, as it may the configuration
    assert run_daemon(node, "--check").returncode == 0


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_log_file_left_open_to_others_beside_the_database_is_refused(
    site: Site, suffix: str
) -> None:
    # Left by a daemon killed while the database was still 0644 (an older release): SQLite
    # keeps using the file with its mode after the database itself is made 0600, and writes
    # every new password hash into a -wal anyone on the host may read.
    database = site.directory / "otpradius.db"
    beside = database.with_name(database.name + suffix)
    beside.touch()
    beside.chmod(0o644)
    node = site.node()
    for args in (["--check"], []):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {beside}: {OPEN_DATABASE[0o644]}; chmod 600 it"
        ]
    beside.chmod(0o600)
    assert run_daemon(node, "--check").returncode == 0


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["open", "sticky"])
def test_a_database_in_a_folder_others_may_write_in_is_refused_at_check_and_start(
    site: Site, mode: int
) -> None:
    # Others could rename a database of their own over it (the running daemon follows the
    # path to the new file and authenticates against it) or, with the sticky bit, plant its
    # -wal, -shm or -writer file before SQLite makes them.
    node = site.node()
    site.directory.chmod(mode)
    try:
        for args in (["--check"], []):
            refused = run_daemon(node, *args)
            assert refused.returncode == 78, refused.stderr
            assert refused.stderr.splitlines() == [
                f"otp-radiusd: error: {site.directory}: others may write in the database's "
                "folder and replace otpradius.db or plant files beside it; chmod o-w it"
            ]
        site.directory.chmod(0o770)  # the service's group may, as it may write the file
        assert run_daemon(node, "--check").returncode == 0
    finally:
        site.directory.chmod(0o700)


def key_id(path: Path) -> str:
    """A key file's id, as ``otpctl key rotate`` and ``db backup`` print it (README)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_a_key_file_that_does_not_open_the_seeds_is_refused_at_check_and_start(
    site: Site, tmp_path: Path
) -> None:
    serial = site.active_user().bound.serial
    other_key = tmp_path / "other.key"
    create_key(other_key)
    node = site.node()
    text = node.config_path.read_text(encoding="utf-8")
    node.config_path.write_text(text.replace(str(site.key_file), str(other_key)), encoding="utf-8")
    for args in (("--check",), ()):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78
        # Both ids: the key file to restore is the one whose backup is labelled with the
        # seeds' id (a database copy from before a rotation, beside the rotated key, say).
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {other_key}: does not open the seeds in the database: it is "
            f"key {key_id(other_key)}, and token {serial}'s seed is sealed under key "
            f"{key_id(site.key_file)}; restore the key file with that id (this one is "
            "another, or from before or after a 'key rotate')"
        ]


def test_a_missing_key_file_is_asked_back_by_its_id_once_the_database_holds_seeds(
    site: Site, tmp_path: Path
) -> None:
    # A database restored without its key: "run 'otpctl init'" sent the operator to a
    # command that refuses to make a key for it, and named no key to look for.
    node = site.node()
    wanted = key_id(site.key_file)
    kept = tmp_path / "kept.key"
    site.key_file.rename(kept)
    try:  # no seed yet: any new key will do
        refused = run_daemon(node, "--check")
        assert refused.returncode == 78
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {site.key_file}: key file not found (run 'otpctl init')"
        ]
    finally:
        kept.rename(site.key_file)
    site.active_user()
    site.key_file.rename(kept)
    try:
        refused = run_daemon(node, "--check")
        assert refused.returncode == 78
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {site.key_file}: key file not found, but the database holds "
            f"1 seed(s) sealed under key {wanted}: restore the key file with that id (a new "
            "key would open none of them)"
        ]
    finally:
        kept.rename(site.key_file)
    assert run_daemon(node, "--check").returncode == 0


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["open", "sticky"])
def test_a_key_file_in_a_folder_others_may_write_in_is_refused_at_check_and_start(
    site: Site, tmp_path: Path, mode: int
) -> None:
    # Others could swap the key, or plant the pending key that the next rotation re-seals
    # every seed under; with the sticky bit they can still plant it.
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    moved = folder / "seeds.key"
    site.key_file.rename(moved)
    node = site.node()
    text = node.config_path.read_text(encoding="utf-8")
    node.config_path.write_text(text.replace(str(site.key_file), str(moved)), encoding="utf-8")
    folder.chmod(mode)
    for args in (("--check",), ()):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {folder}: others may write in the key file's folder and "
            "replace seeds.key or plant seeds.key.new; chmod o-w it"
        ]
    folder.chmod(0o770)  # the service's group may
    assert run_daemon(node, "--check").returncode == 0


def test_a_key_file_that_cannot_be_read_is_refused_at_check_and_start_in_one_line(
    site: Site,
) -> None:
    node = site.node()
    site.key_file.rename(site.key_file.with_name("kept.key"))
    site.key_file.mkdir(mode=0o700)  # its mode passes; reading it fails
    for args in (("--check",), ()):
        refused = run_daemon(node, *args)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == [
            f"otp-radiusd: error: {site.key_file}: cannot read the key file: "
            f"{os.strerror(errno.EISDIR)}"
        ]


def test_a_missing_configuration_file_or_database_is_one_line_and_creates_nothing(
    site: Site, tmp_path: Path
) -> None:
    node = site.node()
    node.config_path.rename(tmp_path / "elsewhere.toml")
    refused = run_daemon(node)
    assert refused.returncode == 78
    assert refused.stderr.splitlines() == [
        f"otp-radiusd: error: {node.config_path}: configuration file not found "
        "(give --config PATH or set OTPRADIUS_CONFIG)"
    ]
    node.write_config()
    text = node.config_path.read_text(encoding="utf-8")
    missing = tmp_path / "typo" / "otpradius.db"
    missing.parent.mkdir()
    node.config_path.write_text(
        text.replace(site.database_url, f"sqlite:///{missing}"), encoding="utf-8"
    )
    refused = run_daemon(node, "--check")
    assert refused.returncode == 74
    assert refused.stderr.splitlines() == [
        f"otp-radiusd: error: {missing}: no database file: run 'otpctl init' first"
    ]
    assert not missing.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "[database] url: not a database URL"),
        ("mysql://otp:pw@db/otp", "[database] url: unsupported driver 'mysql'"),
    ],
)
def test_a_bad_database_url_is_a_configuration_error(site: Site, url: str, message: str) -> None:
    node = site.node()
    text = node.config_path.read_text(encoding="utf-8")
    node.config_path.write_text(text.replace(site.database_url, url), encoding="utf-8")
    refused = run_daemon(node, "--check")
    assert refused.returncode == 78
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"otp-radiusd: error: {node.config_path}: {message}")


def _bind_as_another_user(host: str, port: int, option: int, report: int) -> None:
    """In a forked child: become nobody and try to share the port with ``option``."""
    os.setgid(65534)
    os.setuid(65534)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, option, 1)
    try:
        sock.bind((host, port))
    except OSError:
        os.write(report, b"refused")
        os._exit(0)
    os.write(report, b"bound")
    time.sleep(30)
    os._exit(0)


@pytest.mark.parametrize("option", ["SO_REUSEADDR", "SO_REUSEPORT"])
def test_another_local_user_cannot_share_the_port_and_take_the_requests(
    site: Site, option: str
) -> None:
    # With SO_REUSEADDR on the workers' sockets, any local user setting it too could bind the
    # same address and port, and the kernel handed that process the NAS's datagrams: every
    # login failed, and the requests were the attacker's to test secrets against.
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    with site.node(mode="split") as node:
        host, port = node.address
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child never returns
            os.close(read_end)
            _bind_as_another_user(host, port, getattr(socket, option), write_end)
        os.close(write_end)
        try:
            verdict = os.read(read_end, 16)
            with node.client(timeout=1.0) as nas:
                answered = [nas.status() is not None for _ in range(3)]
        finally:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            os.close(read_end)
    assert verdict == b"refused"
    assert all(answered)


def test_an_empty_config_variable_counts_as_unset(tmp_path: Path) -> None:
    """As for otpctl: read as a path, an empty value named the current folder."""
    default = Path("/etc/otpradius/config.toml")
    if default.exists():
        pytest.skip(f"{default} exists on this machine")
    done = subprocess.run(
        [sys.executable, "-m", "radiusd.main", "--stderr", "--check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OTPRADIUS_CONFIG": "", "PYTHONPATH": str(REPO_ROOT)},
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 78
    assert done.stderr.splitlines() == [
        f"otp-radiusd: error: {default}: configuration file not found "
        "(give --config PATH or set OTPRADIUS_CONFIG)"
    ]


def test_the_help_names_the_fixed_default_with_the_variable_set(tmp_path: Path) -> None:
    # argparse's %(default)s put the variable's value where the fallback goes.
    done = subprocess.run(
        [sys.executable, "-m", "radiusd.main", "--help"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "OTPRADIUS_CONFIG": str(tmp_path / "mine.toml"),
            "COLUMNS": "200",
            "PYTHONPATH": str(REPO_ROOT),
        },
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0
    assert "(default: $OTPRADIUS_CONFIG, else /etc/otpradius/config.toml)" in done.stdout
    assert "mine.toml" not in done.stdout
