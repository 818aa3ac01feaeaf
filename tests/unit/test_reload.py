"""What a SIGHUP leaves as it runs: every table but [[clients]], and the log says which."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otpcore.config import Settings, parse_settings
from radiusd.supervisor import changes_needing_restart, client_changes

SOURCE = Path("/etc/otpradius/config.toml")
CLIENT = {"name": "vpn-gw-1", "address": "127.0.0.1/32", "secret": "testing123-secret"}


def no_secret_files(path: Path) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", str(path))


def settings(**tables: Any) -> Settings:
    return parse_settings({"clients": [CLIENT], **tables}, SOURCE, no_secret_files)


def test_a_new_client_alone_needs_no_restart() -> None:
    running = settings()
    portal = {"name": "portal", "address": "127.0.0.2", "secret": "portal-secret-1", "mode": "otp"}
    fresh = parse_settings({"clients": [CLIENT, portal]}, SOURCE, no_secret_files)
    assert changes_needing_restart(running, fresh) == []


def test_every_other_table_changed_is_named() -> None:
    running = settings()
    fresh = settings(
        server={"workers": 3},
        database={"url": "sqlite:////var/lib/otpradius/other.db"},
        secrets={"key_file": "/var/lib/otpradius/other.key"},
        policy={"reject_delay": 0.5},
        hashing={"time_cost": 3},
        tokens={"warn_days": 10},
        logging={"level": "debug"},
    )
    assert changes_needing_restart(running, fresh) == [
        "[server]", "[database]", "[secrets]", "[policy]", "[hashing]", "[tokens]", "[logging]",
    ]  # fmt: skip
    assert changes_needing_restart(running, settings(policy={"reject_delay": 0.5})) == ["[policy]"]


def test_the_reload_line_names_the_clients_added_removed_and_changed() -> None:
    # "reload clients=5" alone left the administrator to guess whether the edit was taken.
    portal = {"name": "portal", "address": "127.0.0.2", "secret": "portal-secret-1", "mode": "otp"}
    gw2 = {"name": "vpn-gw-2", "address": "::1", "secret": "gw2-secret-12345"}
    running = parse_settings({"clients": [CLIENT, portal]}, SOURCE, no_secret_files)
    rekeyed = {**CLIENT, "secret": "a-new-secret-123"}
    fresh = parse_settings({"clients": [rekeyed, gw2]}, SOURCE, no_secret_files)
    assert (
        client_changes(running, fresh) == "clients=2 added=vpn-gw-2 removed=portal changed=vpn-gw-1"
    )
    assert client_changes(running, running) == "clients=2 added=- removed=- changed=-"
