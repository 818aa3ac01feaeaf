"""The daemon under operational stress: a slow password hash, a killed worker, SIGHUP, and the
database going away and coming back (SPEC §4, §6, §8)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from otpcore.keys import rotate_key
from otpcore.store.hot_sql import READ_ONLY_PG, SOME_SEED
from radiusd.wire import Codes
from tests.integration.conftest import pg_cluster_control
from tests.integration.daemon import (
    REPO_ROOT,
    ClientSpec,
    Node,
    RadiusClient,
    Site,
    TestUser,
    _alive,
    fresh_name,
)

# argon2id parameters that make one verification take about a second.
SLOW_HASHING = {"time_cost": 3, "memory_kib": 262_144, "parallelism": 1}
SHORT_HANG = Path(__file__).with_name("short_hang")
SLOW_WORKER_END = Path(__file__).with_name("slow_worker_end")
NO_DATAGRAM_PAUSE = Path(__file__).with_name("no_datagram_pause")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site.sqlite(tmp_path) as site:
        yield site


def wait_until_answered(client: RadiusClient, timeout: float) -> float:
    """Poll Status-Server until it is answered; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if client.status(timeout=0.25) is not None:
            return time.monotonic() - started
    raise AssertionError(f"no answer to Status-Server within {timeout} s")


def wait_for_workers(node: Node, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = node.worker_pids()
        if len(pids) == count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"workers {node.worker_pids()}, expected {count}")


def test_a_slow_password_hash_does_not_delay_status_server(site: Site) -> None:
    slow = site.active_user(hashing=SLOW_HASHING)
    with site.node(mode="split", workers=1) as node, node.client() as nas:
        with node.client() as monitor:
            request = nas.build(user_name=slow.login, password=slow.password + slow.bound.code())
            nas.send(request)
            sent = time.monotonic()
            time.sleep(0.05)  # the request is being hashed by now
            status = monitor.status(timeout=0.2)
            answered = time.monotonic()
            assert status is not None, "Status-Server waited for the password hash"
            raw = nas.receive(request, timeout=10)
            done = time.monotonic()
        assert raw is not None
        assert nas.check(request, raw).code is Codes.ACCESS_ACCEPT
        assert answered - sent < 0.3
        assert done > answered  # the authentication was still pending
        assert done - sent > 0.4, "the hash was not slow; the test proves nothing"


def test_housekeeping_runs_at_the_lowest_priority_and_requests_at_normal(site: Site) -> None:
    # The health probe checkpoints the WAL; it must not take the core from the requests.
    # Requests run at the niceness the server was started with (this test's, inherited).
    started_at = os.getpriority(os.PRIO_PROCESS, 0)
    if started_at >= 19:
        pytest.skip("run at the lowest priority already: nothing to tell apart")
    with site.node(workers=1) as node, node.client() as nas:
        assert nas.status() is not None
        (worker,) = node.worker_pids()
        nice = {}
        for task in Path(f"/proc/{worker}/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            nice[int(task.name)] = int(fields[16])  # field 19 of stat: nice
    assert sorted(nice.values()).count(19) == 1, nice
    assert nice[worker] == started_at, nice


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(site: Site) -> None:
    nina = site.active_user()
    with site.node(mode="split", workers=2) as node, node.client() as nas:
        first, second = wait_for_workers(node, 2)
        os.kill(first, signal.SIGKILL)
        # Datagrams already queued on the dying worker's socket are lost (the NAS resends);
        # once it is gone, the other worker answers everything.
        wait_for_workers(node, 1)
        for _ in range(5):
            assert nas.status(timeout=1.0) is not None
        replaced = wait_for_workers(node, 2)
        assert first not in replaced
        assert second in replaced
        assert node.wait_for_log(f"worker died pid={first} signal=KILL restarting slot=")
        reply = nas.auth(nina.login, nina.password + nina.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


def test_a_stderr_nobody_reads_holds_up_no_login(site: Site) -> None:
    # Under systemd with syslog = false, stderr is journald's stream socket. Once journald
    # stalled and the buffer filled, the packet loop waited on the next decision's line for
    # ever: logins stopped, and the supervisor killed worker after worker as hung.
    users = [site.active_user() for _ in range(120)]
    node = site.node(mode="split", workers=1)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 16384)  # what some eighty decisions fill
    os.set_blocking(read_end, False)

    def spawn(env: dict[str, str]) -> None:
        node.process = subprocess.Popen(
            [sys.executable, "-m", "radiusd.main", "--config", str(node.config_path),
             "--stderr"],
            stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, cwd=node.directory,
            env=env, start_new_session=True,
        )  # fmt: skip

    node._spawn = spawn  # type: ignore[method-assign]
    try:
        with node, node.client() as nas:
            os.close(write_end)
            for user in users:
                reply = nas.auth(user.login, user.password + user.bound.code(), timeout=3.0)
                assert reply is not None, "a login went unanswered behind a full stderr"
                assert reply.code is Codes.ACCESS_ACCEPT
            logged = b""
            deadline = time.monotonic() + 10
            # The reader reads again: every decision arrives, the held ones within a second.
            while logged.count(b" auth result=accept ") < len(users):
                assert time.monotonic() < deadline, logged.decode()[-2000:]
                with contextlib.suppress(BlockingIOError):
                    logged += os.read(read_end, 65536)
                time.sleep(0.01)
            for user in users:
                assert f" user={user.login} ".encode() in logged
            node.log_path.write_bytes(logged)  # swept for secrets as every node's log is
    finally:
        os.close(read_end)


def test_a_hung_worker_is_killed_and_replaced(site: Site) -> None:
    # A worker stopped (SIGSTOP, a debugger) or stuck kept its socket: the kernel went on
    # giving it its share of the NASes' source ports, whose logins and Status-Servers went
    # unanswered for as long as it hung, and the supervisor neither saw nor said anything.
    nina = site.active_user()
    with site.node(mode="split", workers=1) as node, node.client() as nas:
        (hung,) = wait_for_workers(node, 1)
        os.kill(hung, signal.SIGSTOP)
        try:
            assert nas.status(timeout=1.0) is None
            wait_until_answered(nas, timeout=20)
        finally:
            if _alive(hung):
                os.kill(hung, signal.SIGKILL)
        assert node.wait_for_log(f"worker hung pid={hung} ")
        assert node.wait_for_log(f"worker died pid={hung} ")
        assert hung not in node.worker_pids()
        reply = nas.auth(nina.login, nina.password + nina.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


def test_a_pause_of_the_whole_host_kills_no_worker(site: Site) -> None:
    # A VM snapshot or migration, or a suspend, stops every process at once. Waking first, the
    # supervisor found each worker's last heartbeat older than its limit (2 s in this daemon,
    # 10 s in a real one) and killed them all, though each beats again within a second. And a
    # stop and continue of the supervisor itself (here SIGSTOP, as Ctrl-Z and fg or a debugger
    # do) made it read a signal nobody sent, take it for SIGTERM and die on its name.
    node = site.node(workers=1)
    path = [str(SHORT_HANG), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    node.start(env={"PYTHONPATH": os.pathsep.join(filter(None, path))})
    with node, node.client() as nas:
        (worker,) = wait_for_workers(node, 1)
        assert node.process is not None
        supervisor = node.process.pid
        os.kill(worker, signal.SIGSTOP)
        os.kill(supervisor, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(supervisor, signal.SIGCONT)
        time.sleep(0.5)
        os.kill(worker, signal.SIGCONT)
        time.sleep(3.0)
        log = node.log_text()
        assert "worker hung" not in log
        assert "Traceback" not in log
        assert node.worker_pids() == [worker]
        assert nas.status() is not None


def test_workers_zero_starts_one_worker_per_core_the_server_may_use(site: Site) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to tell the host's from the allowed ones")
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # the server inherits it, as under CPUAffinity=
    try:
        node = site.node(workers=0).start()
    finally:
        os.sched_setaffinity(0, cores)
    with node:
        time.sleep(0.5)
        assert len(node.worker_pids()) == 1


def test_sighup_reloads_the_clients(site: Site) -> None:
    olga = site.active_user()
    with site.node(mode="split") as node, node.client() as old_nas:
        newcomer = ClientSpec(name="newcomer", address="127.0.0.2/32", mode="split")
        with node.client(newcomer) as nas:
            status = nas.build(code=Codes.STATUS_SERVER)
            assert nas.silent(status)
            node.clients.append(newcomer)
            node.reload()
            wait_until_answered(nas, timeout=5)
            assert "not_applied" not in node.log_text()
            reply = nas.auth(olga.login, olga.password + olga.bound.code())
            assert reply is not None
            assert reply.code is Codes.ACCESS_ACCEPT
            (decision,) = node.decisions()
            assert (decision["client"], decision["src"]) == ("newcomer", "127.0.0.2")
            # A broken file is refused on SIGHUP; the running clients stay.
            node.config_path.write_text("[[clients]]\nname = 1\n", encoding="utf-8")
            node.hangup()
            assert node.wait_for_log("reload refused")
            assert nas.status() is not None
            assert old_nas.status() is not None


def _reloads(node: Node) -> int:
    """How many workers have acted on a SIGHUP (either way) so far."""
    text = node.log_text()
    return text.count("reload nothing_new") + text.count("reload clients=2\n")


def test_workers_serve_the_clients_the_supervisor_checked_not_the_file(site: Site) -> None:
    # Workers read the file again on the SIGHUP the supervisor passed on: a file edited once
    # more in between gave them clients the supervisor never checked or logged, and workers
    # could serve different lists. A worker now reads nothing on SIGHUP.
    with site.node(mode="split", workers=2) as node:
        workers = wait_for_workers(node, 2)
        newcomer = ClientSpec(name="newcomer", address="127.0.0.2/32", mode="otp")
        with node.client(newcomer) as nas:
            node.clients.append(newcomer)
            node.write_config()
            for worker in workers:
                os.kill(worker, signal.SIGHUP)
            deadline = time.monotonic() + 5
            while _reloads(node) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert nas.silent(nas.build(code=Codes.STATUS_SERVER))
            assert node.log_text().count("reload nothing_new") == 2
            node.hangup()
            assert node.wait_for_log("reload clients=2 added=newcomer")
            wait_until_answered(nas, timeout=5)
            assert node.worker_pids() == workers


def test_a_reload_from_a_configuration_others_may_change_is_refused(site: Site) -> None:
    with site.node(mode="split") as node:
        newcomer = ClientSpec(name="newcomer", address="127.0.0.2/32", mode="otp")
        with node.client(newcomer) as nas:
            node.clients.append(newcomer)
            node.write_config()
            node.config_path.chmod(0o666)
            node.hangup()
            assert node.wait_for_log("reload refused")
            assert f"{node.config_path}: writable by group or others" in node.log_text()
            # Neither the supervisor nor a worker took the client it names.
            assert nas.silent(nas.build(code=Codes.STATUS_SERVER))
        node.config_path.chmod(0o640)


@pytest.mark.parametrize(
    "broken",
    [
        # A NUL in a path: Python refuses to hand it to the system (ValueError, not OSError).
        '[[clients]]\nname = "nas"\naddress = "127.0.0.2/32"\nsecret_file = "nas\\u0000.secret"\n',
        '[database]\nurl = "sqlite:///otpradius\\u0000.db"\n',
        # Nesting deeper than the TOML parser's recursion goes.
        "deep = " + "[" * 5000 + "]" * 5000 + "\n",
    ],
    ids=["nul_in_secret_file", "nul_in_database_path", "deep_nesting"],
)
def test_a_reload_of_any_broken_file_keeps_the_server_running(site: Site, broken: str) -> None:
    # Such a file ended the supervisor on SIGHUP, and the workers with it: every VPN login
    # failed until someone restarted the service.
    with site.node(mode="split") as node, node.client() as nas:
        running = node.config_path.read_text(encoding="utf-8")
        node.config_path.write_text(broken, encoding="utf-8")
        node.hangup()
        assert node.wait_for_log("reload refused")
        (line,) = [x for x in node.log_text().splitlines() if "reload refused" in x]
        assert str(node.config_path) in line
        assert "Traceback" not in node.log_text()
        assert nas.status() is not None
        node.config_path.write_text(running, encoding="utf-8")


def test_a_reload_while_a_worker_starts_is_taken_by_it_and_does_not_end_it(site: Site) -> None:
    # A SIGHUP forwarded to a worker still starting (before its handler was in place) ended
    # it, and the death counted towards the quick deaths that stop the server.
    with site.node(mode="split", workers=1) as node:
        (first,) = wait_for_workers(node, 1)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        fresh: list[int] = []
        while not fresh and time.monotonic() < deadline:
            fresh = [pid for pid in node.worker_pids() if pid != first]
        assert fresh, "no worker was started in place of the killed one"
        newcomer = ClientSpec(name="newcomer", address="127.0.0.2/32", mode="split")
        node.clients.append(newcomer)
        node.reload()
        with node.client(newcomer) as nas:
            wait_until_answered(nas, timeout=10)
        assert node.worker_pids() == fresh
        assert f"worker died pid={fresh[0]} " not in node.log_text()


def test_a_worker_restarted_after_sighup_keeps_the_running_policy(site: Site) -> None:
    # SIGHUP reloads [[clients]] only; every other change needs a restart (systemd unit). A
    # worker that dies after a reload must come back with the settings the others serve with,
    # not with whatever else the file says now (another policy, even another database).
    pia = site.add_user()
    with site.node(mode="split") as node, node.client() as nas:
        node.policy["unregistered"] = "reject"
        node.reload()
        assert node.wait_for_log("reload clients=1")
        # The operator is told the change waits for a restart, not left to think it applied.
        assert node.wait_for_log("reload not_applied=[policy]: only [[clients]] is reloaded")
        (worker,) = wait_for_workers(node, 1)
        os.kill(worker, signal.SIGKILL)
        assert node.wait_for_log(f"worker died pid={worker} ")
        wait_until_answered(nas, timeout=15)
        reply = nas.auth(pia.login, pia.password)
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


@contextmanager
def write_lock_held(site: Site) -> Iterator[None]:
    """Hold the SQLite write lock from another process's connection, as an import does."""
    holder = sqlite3.connect(site.database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def test_a_login_held_up_by_a_write_lock_is_decided_once_whatever_the_nas_resends(
    site: Site,
) -> None:
    # Another process (an import, a sqlite3 shell) holds the write lock for longer than the
    # 30 s duplicate window; the NAS resends every five seconds. The copies must be dropped
    # while the first is still waiting, not decided beside it and counted (SPEC §4).
    rita = site.active_user()
    with site.node(mode="split") as node, node.client() as nas:
        request = nas.build(user_name=rita.login, password=rita.password + rita.bound.code())
        with write_lock_held(site):
            started = time.monotonic()
            while time.monotonic() - started < 36:
                nas.send(request)
                time.sleep(5)
        reply = nas.receive(request, timeout=10)
        assert reply is not None
        assert nas.check(request, reply).code is Codes.ACCESS_ACCEPT
        time.sleep(1)
        assert [d["result"] for d in node.decisions()] == ["accept"]
    assert site.token(rita.bound.serial).fail_count == 0


def test_status_server_goes_silent_while_logins_wait_for_a_write_lock(site: Site) -> None:
    # Logins that cannot be written are not answered; Status-Server must not tell the NAS
    # that this server is fine meanwhile (SPEC §4, §8), and the log must say why.
    sara = site.active_user()
    with site.node(mode="split") as node, node.client() as nas:
        request = nas.build(user_name=sara.login, password=sara.password + sara.bound.code())
        with write_lock_held(site):
            nas.send(request)
            time.sleep(7)
            assert nas.status(timeout=1.0) is None
            assert node.wait_for_log("database unreachable")
        reply = nas.receive(request, timeout=5)
        assert reply is not None
        assert nas.check(request, reply).code is Codes.ACCESS_ACCEPT
        wait_until_answered(nas, timeout=10)
        assert node.wait_for_log("database reachable again")


def test_a_database_file_deleted_under_the_server_is_not_made_again(site: Site) -> None:
    # The next connection made it again, empty and with the umask's mode: the health probe
    # found a database there and Status-Server was answered while every login failed, and
    # a restart then said "no schema: run 'otpctl init'" instead of that the file was gone.
    tara, uma = site.active_user(), site.active_user()
    database = site.directory / "otpradius.db"
    kept = site.directory / "kept.db"
    with site.node(mode="split", workers=1) as node, node.client() as nas:
        reply = nas.auth(tara.login, tara.password + tara.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        os.link(database, kept)
        database.unlink()
        node.mark()
        assert nas.auth(uma.login, uma.password + uma.bound.code(), timeout=1) is None
        time.sleep(2)  # health probes
        assert nas.status(timeout=0.5) is None
        assert not database.exists()
        log = node.new_log()
        assert log.count("database unreachable") == 1, log
        # With why (the login's connection or the probe, whichever found it first).
        assert (
            'database unreachable error="database unavailable: OperationalError: unable to open '
            'database file"'
            in log
            or 'database unreachable error="database file deleted or replaced"' in log
        ), log
        assert "reachable again" not in log
        kept.rename(database)  # put back: served again without a restart
        wait_until_answered(nas, timeout=10)
        reply = nas.auth(uma.login, uma.password + uma.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


def test_a_key_file_removed_under_the_server_is_said_once_and_logins_go_on(site: Site) -> None:
    # Nothing was said: the workers keep the key they read, so the operator learnt of it only
    # when a worker restarted (a hung one killed) could not start and the server stopped.
    vera, wanda = site.active_user(), site.active_user()
    kept = site.directory / "kept.key"
    with site.node(mode="split", workers=2) as node, node.client() as nas:
        node.mark()
        site.key_file.rename(kept)
        try:
            assert node.wait_for_log("key file unusable")
            time.sleep(2)  # more probes: still one line
            reply = nas.auth(vera.login, vera.password + vera.bound.code())
            assert reply is not None
            assert reply.code is Codes.ACCESS_ACCEPT
            assert nas.status() is not None  # the server can still decide every login
        finally:
            kept.rename(site.key_file)
        assert node.wait_for_log("key file usable again")
        log = node.new_log()
        assert log.count("key file unusable") == 1, log
        assert f"{site.key_file}: key file not found" in log, log
        reply = nas.auth(wanda.login, wanda.password + wanda.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


def test_a_node_whose_key_does_not_open_the_seeds_is_silent_until_given_the_rotated_key(
    site: Site,
) -> None:
    # Another node rotated the key (its own copy of the key file), this one was not given the
    # new one: every OTP login here was dropped, yet Status-Server was answered, so the NAS
    # kept sending this node logins and waited each one out.
    xena, yuri = site.active_user(), site.active_user()
    other_node_key = site.directory / "other-node.key"
    other_node_key.write_bytes(site.key_file.read_bytes())
    other_node_key.chmod(0o600)
    with site.node(mode="split", workers=2) as node, node.client() as nas:
        assert nas.status() is not None
        node.mark()
        rotate_key(site.app.store, other_node_key, lambda: datetime.now(UTC))
        assert node.wait_for_log("key does not open the database's seeds")
        time.sleep(1.5)  # every worker's probe has run
        for _ in range(4):  # each worker (the kernel picks one per source port)
            with node.client() as other_port:
                assert other_port.status(timeout=0.5) is None
        assert nas.auth(xena.login, xena.password + xena.bound.code(), timeout=1) is None
        os.replace(other_node_key, site.key_file)  # as README says: mv otpradius.key.new …
        wait_until_answered(nas, timeout=10)
        assert node.wait_for_log("key opens the database's seeds again")
        reply = nas.auth(yuri.login, yuri.password + yuri.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        log = node.new_log()
        assert log.count("key does not open the database's seeds") == 1, log
        assert "names a key the key file does not hold" in log, log
        assert "database unreachable" not in log, log


def test_a_worker_restarted_before_the_node_has_the_rotated_key_waits_for_it(site: Site) -> None:
    # The replacement of a worker that died (a hung one killed, say) after another node
    # rotated the key refused to start, again and again, until the supervisor stopped the
    # whole server, where the workers still running would have taken the key file by
    # themselves once given it.
    zack = site.active_user()
    other_node_key = site.directory / "other-node.key"
    other_node_key.write_bytes(site.key_file.read_bytes())
    other_node_key.chmod(0o600)
    with site.node(mode="split", workers=2) as node, node.client() as nas:
        workers = wait_for_workers(node, 2)
        rotate_key(site.app.store, other_node_key, lambda: datetime.now(UTC))
        assert node.wait_for_log("key does not open the database's seeds")
        node.mark()
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        assert node.wait_for_log("worker started with a key that does not open the database's "
                                 "seeds", timeout=10)  # fmt: skip
        replacements = wait_for_workers(node, 2)
        time.sleep(2)  # long enough for the replacements to have died again, as they did
        assert node.running, node.new_log()
        assert node.worker_pids() == replacements
        for _ in range(4):  # each worker (the kernel picks one per source port)
            with node.client() as other_port:
                assert other_port.status(timeout=0.5) is None
        os.replace(other_node_key, site.key_file)
        wait_until_answered(nas, timeout=10)
        for _ in range(4):  # each worker takes the key at its own next probe
            with node.client() as other_port:
                wait_until_answered(other_port, timeout=10)
        reply = nas.auth(zack.login, zack.password + zack.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        assert "Traceback" not in node.log_text()


@contextmanager
def small_file_system(folder: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted on ``folder`` (mode 0700) for the block; skips where mounts are
    not allowed (not root, or no CAP_SYS_ADMIN)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here to fill it")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full; the file."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, bytes(65536))
    except OSError:
        pass  # ENOSPC, or a short last write before it
    finally:
        os.close(descriptor)
    return filler


def test_a_full_disk_drops_logins_names_the_disk_and_serves_again_once_freed(
    tmp_path: Path,
) -> None:
    # The batch's reason never reached the log: an operator read "database unreachable", a
    # network fault on a database that is a local file, with nothing about the disk.
    with (
        small_file_system(tmp_path / "disk") as disk,
        Site(tmp_path / "site", f"sqlite:///{disk / 'otpradius.db'}") as site,
    ):
        users = [site.active_user() for _ in range(3)]
        walter = users[0]
        with site.node(mode="auto", workers=1) as node, node.client() as nas:
            filler = fill(disk)
            node.mark()
            # Each password alone stores a challenge: soon a commit needs room it cannot have.
            for attempt in range(200):
                user = users[attempt % len(users)]
                if nas.auth(user.login, user.password, timeout=1.0) is None:
                    break
            else:
                raise AssertionError("every challenge was stored on a full disk")
            log = node.new_log()
            assert log.count("database unreachable") == 1, log
            assert (
                'database unreachable error="database unavailable: OperationalError: '
                'database or disk is full"'
            ) in log, log
            filler.unlink()
            wait_until_answered(nas, timeout=10)
            code = walter.bound.code()
            reply = nas.auth(walter.login, walter.password + code)
            assert reply is not None
            assert reply.code is Codes.ACCESS_ACCEPT
            replayed = nas.auth(walter.login, walter.password + code)
            assert replayed is not None
            assert replayed.code is Codes.ACCESS_REJECT
        site.app.store.dispose()


def make_workers_unable_to_start(site: Site, node: Node) -> None:
    """Open the key file to others (workers refuse it at start), then kill the worker."""
    site.key_file.chmod(0o644)
    (worker,) = wait_for_workers(node, 1)
    os.kill(worker, signal.SIGKILL)


def test_a_worker_that_cannot_start_again_stops_the_server_with_an_error(site: Site) -> None:
    # A supervisor restarting a worker that can never start served nobody while systemd saw
    # it running; stopping with an error lets Restart=on-failure start the service again,
    # whose start then says why (README "Run under systemd").
    node = site.node(workers=1).start()
    try:
        make_workers_unable_to_start(site, node)
        assert node.process is not None
        status = node.process.wait(40)
    finally:
        site.key_file.chmod(0o600)
    assert status != 0
    log = node.log_text()
    assert "key file is readable by group or others" in log
    assert "within 30 s of their start: stopping" in log


def test_sigterm_is_handled_at_once_while_a_worker_restart_waits(site: Site) -> None:
    node = site.node(workers=1).start()
    try:
        make_workers_unable_to_start(site, node)
        deadline = time.monotonic() + 30
        while node.log_text().count("worker died") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.log_text().count("worker died") == 5  # now the longest wait, 6.4 s
        assert node.process is not None
        started = time.monotonic()
        node.process.send_signal(signal.SIGTERM)
        status = node.process.wait(20)
    finally:
        site.key_file.chmod(0o600)
    assert status == 0
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("pausing", ["transports pause", "transports cannot pause"])
def test_a_stop_sends_the_rejects_it_holds_at_once(site: Site, pausing: str) -> None:
    # On Python 3.11.2 (Debian 12's, which README's install uses) a datagram transport cannot
    # pause: each worker failed at stop with NotImplementedError, and the Rejects it held for
    # reject_delay were never sent, while the server still exited 0.
    erin = site.active_user()
    node = site.node(mode="split", policy={"reject_delay": 5.0})
    if pausing == "transports cannot pause":
        path = [str(NO_DATAGRAM_PAUSE), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
        node.start(env={"PYTHONPATH": os.pathsep.join(filter(None, path))})
    else:
        node.start()
    with node.client() as nas:
        wrong = nas.build(user_name=erin.login, password=erin.password + erin.bound.wrong_code())
        nas.send(wrong)
        deadline = time.monotonic() + 5
        while not node.decisions() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [d["reason"] for d in node.decisions()] == ["bad_otp"]  # decided, now held
        started = time.monotonic()
        node.stop()
        reply = nas.receive(wrong, 1.0)
    assert reply is not None
    assert nas.check(wrong, reply).code is Codes.ACCESS_REJECT
    assert time.monotonic() - started < 4  # sent at the stop, not after the 5 s hold
    assert "worker failed" not in node.log_text()
    assert " ERROR " not in node.log_text()


def signal_every_process(node: Node, signo: signal.Signals) -> None:
    """Send ``signo`` to the supervisor and each of its workers, as ``pkill otp-radiusd`` does."""
    assert node.process is not None
    for pid in [node.process.pid, *node.worker_pids()]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signo)


@pytest.mark.parametrize(
    ("first", "again"),
    [
        (signal.SIGTERM, signal.SIGTERM),  # pkill otp-radiusd, run again before it is gone
        (signal.SIGTERM, signal.SIGINT),  # pkill, then Ctrl-C
        (signal.SIGINT, signal.SIGINT),  # Ctrl-C pressed again
    ],
    ids=["term-term", "term-int", "int-int"],
)
def test_a_stop_signal_repeated_while_the_server_stops_is_harmless(
    site: Site, first: signal.Signals, again: signal.Signals
) -> None:
    # A worker whose stop signal came again in the last steps of its stop (pkill twice; or
    # once, with the supervisor's own SIGTERM after pkill's) printed "Exception ignored when
    # trying to write to the signal wakeup fd" and a traceback; a second SIGINT made it fail
    # with KeyboardInterrupt. Those steps are slowed down here to be hit every time.
    node = site.node(workers=2)
    path = [str(SLOW_WORKER_END), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    node.start(env={"PYTHONPATH": os.pathsep.join(filter(None, path))})
    assert node.process is not None
    workers = wait_for_workers(node, 2)
    try:
        signal_every_process(node, first)
        deadline = time.monotonic() + 20
        while node.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            signal_every_process(node, again)
        status = node.process.wait(5)
    finally:
        node.kill()
    log = node.log_text()
    assert status == 0, log
    assert "Traceback" not in log, log
    assert "worker failed" not in log, log
    assert log.count(" stop signal=") == 1, log
    assert not [pid for pid in workers if _alive(pid)]


def test_workers_stop_when_the_supervisor_is_killed(site: Site) -> None:
    # Orphaned workers went on serving for ever, beyond any SIGHUP, holding the port against
    # the next otp-radiusd.
    node = site.node(workers=2).start()
    workers = wait_for_workers(node, 2)
    assert node.process is not None
    os.kill(node.process.pid, signal.SIGKILL)
    node.process.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # no orphan may outlive the test
        os.kill(pid, signal.SIGKILL)
    assert not left
    again = site.node(workers=1)
    again.port = node.port
    again.write_config()
    with again, again.client() as nas:
        assert nas.status() is not None


# The database going away: PostgreSQL, stopped and started with pg_ctlcluster.


@pytest.mark.service
@pytest.mark.stops_postgresql
def test_database_unreachable_means_no_accept_and_service_resumes(pg_site: Site) -> None:
    pia, quinn = pg_site.active_user(), pg_site.active_user()
    control = pg_cluster_control()
    with pg_site.node(mode="split", workers=1) as node, node.client() as nas:
        reply = nas.auth(pia.login, pia.password + pia.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        subprocess.run([*control, "stop"], check=True, capture_output=True, timeout=60)
        try:
            # The right password and OTP get no answer at all, so the NAS fails over.
            assert nas.auth(quinn.login, quinn.password + quinn.bound.code(), timeout=2) is None
            assert "drop reason=database_unavailable" in node.log_text()
            # Health checks go unanswered too, so a NAS marks this server dead.
            assert nas.status(timeout=0.5) is None
        finally:
            subprocess.run([*control, "start"], check=True, capture_output=True, timeout=60)
        wait_until_answered(nas, timeout=15)
        reply = nas.auth(quinn.login, quinn.password + quinn.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        assert "database reachable again" in node.log_text()
        assert [d["user"] for d in node.decisions()] == [pia.login, quinn.login]


@pytest.mark.service
@pytest.mark.stops_postgresql
def test_a_worker_that_dies_while_the_database_is_away_does_not_stop_the_server(
    pg_site: Site,
) -> None:
    # Its replacements died at start one after the other, as the database did not answer,
    # and after six the supervisor stopped the whole server with status 1 (under systemd,
    # restarts that fail the same way until the start limit), though the database was only
    # away for a while and would have been served again the moment it came back.
    rosa = pg_site.active_user()
    control = pg_cluster_control()
    with pg_site.node(mode="split", workers=1) as node, node.client() as nas:
        (first,) = wait_for_workers(node, 1)
        subprocess.run([*control, "stop"], check=True, capture_output=True, timeout=60)
        try:
            os.kill(first, signal.SIGKILL)
            time.sleep(20)  # longer than six quick deaths take
            assert node.running, f"the server stopped:\n{node.log_text()}"
            replacement = [pid for pid in node.worker_pids() if pid != first]
            assert replacement, "no worker was started in place of the killed one"
            assert nas.status(timeout=0.5) is None
        finally:
            subprocess.run([*control, "start"], check=True, capture_output=True, timeout=60)
        wait_until_answered(nas, timeout=15)
        reply = nas.auth(rosa.login, rosa.password + rosa.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        assert node.worker_pids() == replacement
        assert "worker started while the database does not answer" in node.log_text()


def answered_again(node: Node, nas: RadiusClient, user: TestUser) -> None:
    """Status-Server answered again, then ``user``'s login accepted, and the log said once
    that the database is reachable again."""
    wait_until_answered(nas, timeout=10)
    reply = nas.auth(user.login, user.password + user.bound.code())
    assert reply is not None
    assert reply.code is Codes.ACCESS_ACCEPT
    assert node.new_log().count("database reachable again") == 1


@contextmanager
def read_only(site: Site) -> Iterator[None]:
    """Make the site's PostgreSQL database refuse writes (as a standby does after a failover
    led its address there), new sessions and old alike, for the block."""
    name = make_url(site.database_url).database
    admin = create_engine(site.database_url, isolation_level="AUTOCOMMIT")

    def default_read_only(value: str) -> None:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
            )
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    default_read_only("on")
    try:
        yield
    finally:
        default_read_only("off")
        admin.dispose()


@pytest.mark.service
def test_a_database_that_refuses_writes_is_unreachable_until_it_takes_them_again(
    pg_site: Site,
) -> None:
    # Every login failed on its first write, yet the health probe's SELECT 1 went through:
    # Status-Server was answered between logins, so a NAS kept this server as healthy, and
    # the log said unreachable and reachable again for every login.
    users = [pg_site.active_user() for _ in range(5)]
    with pg_site.node(mode="split", workers=1) as node, node.client() as nas:
        # Marked before: the health probe may find the database read-only, and say so, before
        # the block below starts.
        node.mark()
        with read_only(pg_site):
            for user in users[:4]:
                assert nas.auth(user.login, user.password + user.bound.code(), timeout=1) is None
                time.sleep(1.5)  # a health probe in between
                assert nas.status(timeout=0.5) is None
            log = node.new_log()
        assert log.count("database unreachable") == 1, log
        assert "reachable again" not in log
        answered_again(node, nas, users[4])


@pytest.mark.service
def test_status_server_goes_silent_while_logins_cannot_open_a_connection(pg_site: Site) -> None:
    # PostgreSQL out of connection slots: a login's thread could not connect and the login was
    # dropped, yet the health probe's own connection, open from before, still answered, so
    # Status-Server was answered between logins and a NAS kept sending logins here.
    users = [pg_site.active_user() for _ in range(3)]
    name = make_url(pg_site.database_url).database
    with pg_site.node(mode="split", workers=1) as node, node.client() as nas:
        first = nas.auth(users[0].login, users[0].password + users[0].bound.code())
        assert first is not None
        assert first.code is Codes.ACCESS_ACCEPT
        time.sleep(1.5)  # a health probe after the login: its last statement is its own
        admin = create_engine(pg_site.database_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as session:
                # Room for this session and the probe's connection alone; every other is
                # ended, so a login's thread must open a new one and cannot.
                session.execute(text(f'ALTER DATABASE "{name}" CONNECTION LIMIT 2'))
                try:
                    ended = session.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND query NOT IN (:seed, :writable)"
                        ),
                        {"seed": SOME_SEED, "writable": READ_ONLY_PG},
                    ).all()
                    assert ended  # the login's connections
                    node.mark()
                    user = users[1]
                    login = user.password + user.bound.code()
                    assert nas.auth(user.login, login, timeout=1) is None
                    for _ in range(3):
                        time.sleep(1.2)  # a health probe in between
                        assert nas.status(timeout=0.5) is None
                    log = node.new_log()
                finally:
                    # Lifted on this session, which holds one of the two places: a test that
                    # failed must not leave the next ones in this database without room.
                    session.execute(text(f'ALTER DATABASE "{name}" CONNECTION LIMIT -1'))
        finally:
            admin.dispose()
        assert log.count("database unreachable") == 1, log
        assert "too many connections" in log
        assert "reachable again" not in log
        answered_again(node, nas, users[2])


@pytest.mark.service
def test_a_read_only_database_is_said_so_and_status_server_goes_silent(pg_site: Site) -> None:
    # The probe alone, no login to fail first: it finds the database read-only, says so (not
    # only "unreachable"), and the server goes silent to Status-Server until it takes writes.
    # And to logins: a standby still answers reads, and a login it did not know (imported on
    # the primary just before the failover, not yet replicated there) was rejected, so the
    # NAS took that Reject instead of asking the server it fails over to.
    user = pg_site.active_user()
    with pg_site.node(mode="split", workers=1) as node, node.client() as nas:
        time.sleep(1.5)  # the first health probe has connected (not ended while it connects)
        node.mark()
        with read_only(pg_site):
            assert node.wait_for_log("database unreachable", timeout=5), node.new_log()
            assert nas.status(timeout=0.5) is None
            assert nas.auth(fresh_name("u"), "not-a-user-pw", timeout=1.5) is None
            assert "drop reason=database_unavailable" in node.new_log()
        line = next(line for line in node.new_log().splitlines() if "unreachable" in line)
        assert 'error="database read-only: transaction_read_only is on"' in line, line
        wait_until_answered(nas, timeout=10)
        reply = nas.auth(user.login, user.password + user.bound.code())
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT


def terminate_connections(site: Site) -> int:
    """End every connection to the site's database (but the one asking), as a PostgreSQL
    restart, a failover or a proxy's idle timeout ends them; waits until they are gone."""
    admin = create_engine(site.database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(ended)


@pytest.mark.service
@pytest.mark.parametrize("mode", ["split", "otp"])
def test_connections_dropped_between_two_logins_cost_the_second_nothing(
    pg_site: Site, mode: str
) -> None:
    # The first request after the server dropped the node's idle connections read (or began
    # its batch) on a dead one and was dropped, and the log said the database was unreachable
    # and then reachable again. Split mode reads in a hash thread; OTP mode (no password
    # hash) reads and writes in the database thread.
    first, second = pg_site.active_user(), pg_site.active_user()

    def text_for(user: TestUser) -> str:
        return user.bound.code() if mode == "otp" else user.password + user.bound.code()

    with pg_site.node(mode=mode, workers=1) as node, node.client() as nas:
        reply = nas.auth(first.login, text_for(first))
        assert reply is not None
        assert reply.code is Codes.ACCESS_ACCEPT
        time.sleep(1.5)  # the first health probe has connected (not ended while it connects)
        node.mark()
        assert terminate_connections(pg_site) >= 2  # at least the request path's and the probe's
        reply = nas.auth(second.login, text_for(second))
        assert reply is not None, node.new_log()
        assert reply.code is Codes.ACCESS_ACCEPT
        time.sleep(1.5)  # a health probe on its own dropped connection
        assert nas.status(timeout=1) is not None
        log = node.new_log()
    assert "unreachable" not in log, log
    assert [(d["result"], d["user"]) for d in node.decisions(new=True)] == [
        ("accept", second.login)
    ]


def test_readiness_reload_and_stop_are_notified_to_systemd(site: Site, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(5)
        node = site.node()
        node.start(env={"NOTIFY_SOCKET": str(notify_path)})
        ready = notify.recv(4096).decode().splitlines()
        assert "READY=1" in ready
        assert node.process is not None
        assert f"MAINPID={node.process.pid}" in ready
        node.reload()
        assert notify.recv(4096).decode().splitlines()[0] == "RELOADING=1"
        assert "READY=1" in notify.recv(4096).decode().splitlines()
        node.stop()
        assert "STOPPING=1" in notify.recv(4096).decode().splitlines()


def test_the_server_deletes_expired_challenges_and_keeps_live_ones(site: Site) -> None:
    user = site.active_user()
    now = datetime.now(UTC)
    with site.app.hot.transaction() as writer:
        for number in range(2_500):  # more than one slice of the purge
            expires = now - timedelta(seconds=1 + number)
            writer.add_challenge(number.to_bytes(20, "big"), user.login, "otp", None, expires)
        writer.add_challenge(b"live" * 5, user.login, "otp", None, now + timedelta(minutes=5))
    assert site.app.hot.challenge(b"live" * 5) is not None
    oldest, youngest = (2_499).to_bytes(20, "big"), (0).to_bytes(20, "big")
    with site.node():
        # The purge deletes a slice per transaction, oldest first: the youngest expired
        # challenge goes in the last slice, so it is the one to wait for.
        deadline = time.monotonic() + 15
        while site.app.hot.challenge(youngest) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert site.app.hot.challenge(youngest) is None
        assert site.app.hot.challenge(oldest) is None
        assert site.app.hot.challenge(b"live" * 5) is not None


def _core_limit(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise AssertionError(f"no core limit in /proc/{pid}/limits")


def test_no_process_of_the_server_may_leave_a_core_dump(site: Site) -> None:
    # A core dump holds the seed key, the shared secrets and the passwords being checked;
    # started from a shell that allows them, the server must still never write one.
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    try:
        node = site.node(workers=1).start()
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    with node, node.client() as nas:
        assert nas.status() is not None
        (worker,) = node.worker_pids()
        assert _core_limit(node.process.pid) == ["0", "0"]
        assert _core_limit(worker) == ["0", "0"]
