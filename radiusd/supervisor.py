"""The parent process: forks the workers, restarts any that dies, relays SIGHUP and SIGTERM,
and tells systemd when the server is ready. It never touches the database itself: anything
that may wait for it (the daily expiry check runs in the first worker) would keep it from
handling signals meanwhile."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import mmap
import os
import select
import signal
import stat
import struct
import time
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from otpcore.client_config import IpNetwork
from otpcore.config import Settings
from otpcore.errors import OtpError
from otpcore.logfields import field as field_value
from otpcore.store.engine import url_has_password
from otpcore.zones import with_zone
from otphost.settings import load_settings
from radiusd.client_box import ClientBox
from radiusd.clients import interface_index, zone_exists, zone_of
from radiusd.held_lines import send_held
from radiusd.notify import sd_notify
from radiusd.process import run_worker
from radiusd.sockets import shown_endpoint

log = logging.getLogger("otpradius.server")

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Workers dying within 30 s of their start this many times in a row cannot start (a key file
# made readable to others, a database file gone): the supervisor stops with an error, so that
# systemd restarts the service, whose start then says why, or marks it failed.
QUICK_DEATHS_MAX = 5
# A worker whose packet loop has not beaten for this long is hung (stopped by SIGSTOP or a
# debugger, stuck in a lock): the kernel still gives it its share of the NASes' source ports,
# whose requests and Status-Servers then go unanswered for as long as it hangs. It is killed,
# and restarted as a worker that died. A loop never holds its turn for more than milliseconds.
HUNG_S = 10.0
# How often the supervisor looks at the heartbeats.
WATCH_INTERVAL_S = 1.0
# A longer gap between two looks means the supervisor did not run either: the whole host was
# paused (a VM snapshot or migration, a suspend) or starved, and the workers with it. Their
# silence is then counted from the moment the supervisor runs again, or every worker would be
# killed on waking for a pause it did not cause.
PAUSED_S = 3.0
_BEAT = struct.Struct("d")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_SIGNALS = {signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT}


@dataclass
class _Child:
    slot: int
    pid: int
    started: float
    ready_fd: int | None = None  # a restarted worker's readiness pipe, closed when it dies
    hung: bool = False  # killed for not beating; waiting to be reaped


class Supervisor:
    """Keeps ``workers`` processes serving the configured sockets."""

    def __init__(self, config_path: Path, settings: Settings) -> None:
        self.config_path = config_path
        self.settings = settings
        # 0: one per core this process may run on (CPUAffinity=, taskset), not per core of
        # the host, which would put several workers on each allowed core.
        self.count = settings.server.workers or len(os.sched_getaffinity(0)) or 1
        self.children: dict[int, _Child] = {}
        self.stopping = False
        self.failures = 0
        self.restarts: dict[int, float] = {}  # slot -> when to start its worker again
        self.failed = False
        # One monotonic instant per slot, written by its worker's loop (shared with the
        # forked workers; CLOCK_MONOTONIC is the same for every process); 0.0 until it beats.
        self.beats = mmap.mmap(-1, _BEAT.size * self.count)
        self.client_box = ClientBox()
        self.watched = time.monotonic()  # when the heartbeats were last looked at
        self.resumed = 0.0  # when the supervisor last ran again after a pause

    def run(self) -> int:
        """Serve until SIGTERM; returns the exit status."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        ready: list[int] = []
        for slot in range(self.count):
            ready.append(self._spawn(slot)[1])
        if not self._await_ready(ready):
            log.error("start failed: a worker did not become ready")
            self._stop_children()
            return 1
        listen = ",".join(shown_endpoint(host, port) for host, port in self.settings.server.listen)
        log.info("start workers=%d listen=%s clients=%d", self.count, listen,
                 len(self.settings.clients))  # fmt: skip
        warn_readable_secrets(self.config_path, self.settings)
        sd_notify(f"READY=1\nSTATUS=serving on {listen}\nMAINPID={os.getpid()}")
        while True:
            now = time.monotonic()
            if self.failed:
                sd_notify("STOPPING=1")
                self._stop_children()
                return 1
            self._restart_due(now)
            self._kill_hung(now)
            send_held()  # lines a busy syslog daemon or stderr reader could not take yet
            wake = min([now + WATCH_INTERVAL_S, *self.restarts.values()])
            info = signal.sigtimedwait(_SIGNALS, max(0.01, wake - now))
            if info is None or info.si_signo not in _SIGNALS:
                # None: the wait timed out. Any other number is not a signal that came: when a
                # stop and continue of this process (SIGSTOP, Ctrl-Z and fg, a debugger)
                # interrupts the wait past its deadline, CPython returns a siginfo the kernel
                # never filled, which was taken for SIGTERM and crashed on its name.
                continue
            if info.si_signo == signal.SIGCHLD:
                self._reap()
            elif info.si_signo == signal.SIGHUP:
                self._reload()
            else:
                sd_notify("STOPPING=1")
                log.info("stop signal=%s", signal.Signals(info.si_signo).name)
                self._stop_children()
                return 0

    def _spawn(self, slot: int) -> tuple[int, int]:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        _BEAT.pack_into(self.beats, slot * _BEAT.size, 0.0)
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            status = 1
            try:
                _stop_with_parent(parent)
                # SIGHUP stays blocked until the worker's handler is in place (``_serve``): one
                # sent while it starts would otherwise end it, and the reload it asks for is
                # still delivered then.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS - {signal.SIGHUP})
                status = run_worker(
                    self.client_box,
                    self.settings,
                    write_fd,
                    check_expiry=slot == 0,
                    heartbeat=lambda: self._beat(slot),
                )
            except BaseException as exc:  # a child must never return into the parent's code
                log.error("worker failed error=%s", _describe(exc))
            finally:
                logging.shutdown()
                os._exit(status)
        os.close(write_fd)
        self.children[pid] = _Child(slot, pid, time.monotonic())
        return pid, read_fd

    def _beat(self, slot: int) -> None:
        """In a worker: record that its packet loop turns now."""
        _BEAT.pack_into(self.beats, slot * _BEAT.size, time.monotonic())

    def _kill_hung(self, now: float) -> None:
        """SIGKILL every worker whose loop stopped beating; ``_reap`` then restarts it."""
        if now - self.watched > PAUSED_S:
            self.resumed = now
        self.watched = now
        for child in list(self.children.values()):
            (beat,) = _BEAT.unpack_from(self.beats, child.slot * _BEAT.size)
            # One that never beat is still starting: it has as long as a start may take.
            since, limit = (beat, HUNG_S) if beat else (child.started, READY_TIMEOUT_S)
            since = max(since, self.resumed)
            if now - since <= limit or child.hung:
                continue
            log.error("worker hung pid=%d slot=%d: no heartbeat for %.0f s, killing it",
                      child.pid, child.slot, now - since)  # fmt: skip
            child.hung = True
            _signal(child.pid, signal.SIGKILL)

    def _await_ready(self, fds: list[int]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(fds)
        ok = True
        while waiting and time.monotonic() < deadline:
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
            for fd in readable:
                ok = ok and os.read(fd, 1) == b"R"
                os.close(fd)
                waiting.discard(fd)
        for fd in waiting:
            os.close(fd)
        return ok and not waiting

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None or self.stopping:
                continue
            if child.ready_fd is not None:
                os.close(child.ready_fd)
            lived = time.monotonic() - child.started
            self.failures = 0 if lived > 30 else self.failures + 1
            how = _death(status)
            if self.failures > QUICK_DEATHS_MAX:
                log.error("worker died pid=%d %s; workers died %d times in a row within "
                          "30 s of their start: stopping", pid, how, self.failures)  # fmt: skip
                self.failed = True
                return
            log.error("worker died pid=%d %s restarting slot=%d", pid, how, child.slot)
            # A worker that dies at once, again and again, must not spin the machine; the wait
            # is the main loop's, so SIGTERM and SIGHUP are still handled meanwhile.
            delay = min(10.0, 0.2 * 2 ** min(self.failures, 6))
            self.restarts[child.slot] = time.monotonic() + delay

    def _restart_due(self, now: float) -> None:
        for slot, due in list(self.restarts.items()):
            if due <= now:
                del self.restarts[slot]
                pid, fd = self._spawn(slot)
                # Not waited for: a worker that cannot start dies, and is counted then.
                self.children[pid].ready_fd = fd

    def _reload(self) -> None:
        sd_notify("RELOADING=1")
        try:
            fresh = load_settings(self.config_path)
            # Before anything is logged as taken: a list too large to hand on is refused.
            self.client_box.publish(fresh.clients)
        except OtpError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            warn_weak_clients(fresh)
            # Only [[clients]] is reloaded (SPEC §6): a worker restarted later must serve with
            # the same policy, database and sockets as the others, whatever else the file says.
            kept = changes_needing_restart(self.settings, fresh)
            if kept:
                # "reload clients=N" alone read as if the whole file had been taken.
                log.warning("reload not_applied=%s: only [[clients]] is reloaded; restart "
                            "otp-radiusd to apply the rest", ",".join(kept))  # fmt: skip
            log.info("reload %s", client_changes(self.settings, fresh))
            self.settings = replace(self.settings, clients=fresh.clients)
            for pid in self.children:
                os.kill(pid, signal.SIGHUP)
        sd_notify("READY=1")

    def _stop_children(self) -> None:
        self.stopping = True
        self.restarts.clear()
        for pid in list(self.children):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self.children):
            _signal(pid, signal.SIGKILL)
            self.children.pop(pid, None)


# The configuration file's table for each setting a reload leaves as it runs.
_TABLES = {
    "server": "[server]",
    "database_url": "[database]",
    "key_file": "[secrets]",
    "policy": "[policy]",
    "hashing": "[hashing]",
    "tokens": "[tokens]",
    "logging": "[logging]",
}


def changes_needing_restart(running: Settings, fresh: Settings) -> list[str]:
    """The tables of ``fresh`` that differ from the running settings, which a reload ignores."""
    return [
        _TABLES[field.name]
        for field in fields(Settings)
        if field.name in _TABLES and getattr(running, field.name) != getattr(fresh, field.name)
    ]


def client_changes(running: Settings, fresh: Settings) -> str:
    """``clients=N added=… removed=… changed=…``: what a reload does to the client list."""
    old = {client.name: client for client in running.clients}
    new = {client.name: client for client in fresh.clients}
    added = [name for name in new if name not in old]
    removed = [name for name in old if name not in new]
    # Compared whole, secret included, which is never shown: only the name is.
    changed = [name for name in new if name in old and new[name] != old[name]]
    return (
        f"clients={len(new)} added={field_value(','.join(added))} "
        f"removed={field_value(','.join(removed))} changed={field_value(','.join(changed))}"
    )


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies.

    Otherwise a supervisor killed (SIGKILL, the OOM killer) leaves its workers serving for ever
    with the configuration they started with, reachable by no SIGHUP, holding the port that a
    new ``otp-radiusd`` then finds in use.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: int, signo: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signo)


def _death(status: int) -> str:
    """How a child ended, for the log: ``status=1`` (its exit status) or ``signal=KILL``."""
    # The raw wait status said 256 for an exit with 1, and 9 for SIGKILL: alike to a reader.
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"signal={signal.Signals(number).name.removeprefix('SIG')}"
        except ValueError:
            return f"signal={number}"
    return f"status={os.waitstatus_to_exitcode(status)}"


def _describe(exc: BaseException) -> str:
    # OtpError messages are written to be safe to log; other exceptions may carry anything.
    return str(exc) if isinstance(exc, OtpError) else type(exc).__name__


def warn_weak_clients(settings: Settings) -> None:
    """Log a warning for every client whose shared secret is 12 octets or fewer, for every
    address of one that admits more than it names or names a link this host does not have;
    and for a configuration with no client."""
    if not settings.clients:
        # Valid (clients can be added and reloaded later), but a server that drops every
        # request, each with a drop line, looks broken to whoever did not mean it.
        log.warning("no clients: every request is dropped until [[clients]] names one and "
                    "the server is reloaded")  # fmt: skip
    for client in settings.clients:
        if len(client.secret) <= 12:
            log.warning("weak secret client=%s length=%d: use 16 or more random octets",
                        field_value(client.name), len(client.secret))  # fmt: skip
        for written in client.widened:
            # "192.0.2.10/24" reads as one gateway, and admits 254 other hosts with its secret.
            network = ipaddress.ip_network(written, strict=False)
            if isinstance(network, ipaddress.IPv6Network):
                network = with_zone(network, written)  # "fe80::/64" alone reads as every link
            log.warning("wide address client=%s address=%s: admits all of %s; write %s/%d "
                        "for that host alone", field_value(client.name), written, network,
                        written.split("/")[0], network.max_prefixlen)  # fmt: skip
        for network in client.networks:
            zone = zone_of(network)
            if zone is not None and not zone_exists(zone):
                # A typo in the zone ("eht0") would leave the NAS unanswered with no other sign.
                log.warning("unknown zone client=%s address=%s: this host has no interface %s; "
                            "its requests are dropped", field_value(client.name), network,
                            field_value(zone))  # fmt: skip
    _warn_links_named_twice(settings)


def _warn_links_named_twice(settings: Settings) -> None:
    """Warn about one network on one link given to two clients, its interface written once by
    name and once by index (fe80::1%eth0, fe80::1%2): the configuration cannot tell them
    apart, and only the first client in the file is ever matched."""
    seen: dict[tuple[int, int, int], tuple[str, IpNetwork]] = {}
    for client in settings.clients:
        for network in client.networks:
            zone = zone_of(network)
            index = interface_index(zone) if zone is not None else None
            if index is None:
                continue
            place = (int(network.network_address), network.prefixlen, index)
            first = seen.setdefault(place, (client.name, network))
            if first[0] != client.name:
                log.warning("same link client=%s address=%s: client=%s has it already, as %s; "
                            "this client is never matched there", field_value(client.name),
                            network, field_value(first[0]), first[1])  # fmt: skip


def warn_readable_secrets(config_path: Path, settings: Settings) -> None:
    """Log a warning when others on the host may read a secret written in the configuration."""
    try:
        if not config_path.stat().st_mode & stat.S_IROTH:
            return
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # it was read a moment ago; nothing to say if it cannot be now
    clients = data.get("clients", [])
    inline = [str(item.get("name")) for item in clients if isinstance(item, dict)
              and "secret" in item]  # fmt: skip
    if inline:
        log.warning("readable secrets config=%s clients=%s: others on this host can read "
                    "their shared secrets; chmod 640 it or use secret_file", config_path,
                    ",".join(inline))  # fmt: skip
    if url_has_password(settings.database_url):
        log.warning("readable secrets config=%s: others on this host can read the database "
                    "password in [database] url; chmod 640 it", config_path)  # fmt: skip
