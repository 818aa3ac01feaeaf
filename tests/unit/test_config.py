"""Configuration validation (SPEC §6): defaults, and every error naming the key and the file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from otpcore.config import ConfigFile, check_access, parse_settings, settings_from_bytes
from otpcore.crypto import read_secret_file
from otpcore.errors import ConfigError
from otpcore.model import InputMode
from otpcore.passwords import HashingParams
from otpcore.policy import Policy, UnregisteredPolicy

SOURCE = Path("/etc/otpradius/config.toml")
EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
ANY_V4 = "0.0.0.0"  # noqa: S104 - a listen address is only parsed here
CLIENT = {"name": "vpn-gw-1", "address": "127.0.0.1/32", "secret": "testing123"}
SHARED = ["10.9.9.9", "127.0.0.1/32"]  # a second client's addresses, one of them the first's


def no_secret_files(path: Path) -> bytes:
    raise FileNotFoundError(2, "No such file or directory", str(path))


def parse(data: dict[str, Any], source: Path = SOURCE) -> Any:
    return parse_settings(data, source, no_secret_files)


def with_client(**overrides: Any) -> dict[str, Any]:
    client = {**CLIENT, **overrides}
    return {"clients": [{k: v for k, v in client.items() if v is not None}]}


def test_example_configuration_parses_to_the_documented_defaults() -> None:
    if not EXAMPLE.exists():
        pytest.skip("config.example.toml not written yet")
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    settings = parse_settings(data, EXAMPLE, Path.read_bytes)
    assert settings.policy == Policy()
    assert settings.hashing == HashingParams()
    assert settings.server.listen == (("127.0.0.1", 1812), ("::1", 1812))
    assert settings.server.workers == 2
    assert settings.key_file == EXAMPLE.parent / "otpradius.key"
    assert settings.database_url == "sqlite:///" + str(EXAMPLE.parent / "otpradius.db")
    assert settings.tokens.issuer == "otpradius"
    assert settings.tokens.warn_days == 30
    assert (settings.logging.syslog, settings.logging.facility, settings.logging.level) == (
        True,
        "authpriv",
        "info",
    )
    (client,) = settings.clients
    assert client.name == "vpn-gw-1"
    assert client.networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert client.secret == b"testing123"
    assert client.mode is InputMode.AUTO
    assert client.require_message_authenticator is True
    assert client.limit_proxy_state is True


def test_everything_but_the_client_may_be_left_out() -> None:
    settings = parse(with_client())
    assert settings.policy == Policy()
    assert settings.hashing == HashingParams()
    assert settings.server.workers == 2
    assert settings.key_file == SOURCE.parent / "otpradius.key"
    assert settings.database_url == "sqlite:////etc/otpradius/otpradius.db"
    (client,) = settings.clients
    assert client.mode is InputMode.AUTO
    # The protections a NAS of today can meet are on unless a client is set otherwise.
    assert client.require_message_authenticator is True
    assert client.limit_proxy_state is True


def test_a_client_may_turn_off_each_protection_an_older_nas_cannot_meet() -> None:
    data = with_client(require_message_authenticator=False, limit_proxy_state=False)
    (client,) = parse(data).clients
    assert (client.require_message_authenticator, client.limit_proxy_state) == (False, False)
    (client,) = parse(with_client(limit_proxy_state=False)).clients
    assert (client.require_message_authenticator, client.limit_proxy_state) == (True, False)


def test_no_clients_at_all_is_allowed_for_the_cli() -> None:
    assert parse({}).clients == ()


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    source = tmp_path / "conf" / "config.toml"
    data = {
        "database": {"url": "sqlite:///data/otp.db"},
        "secrets": {"key_file": "keys/seed.key"},
    }
    settings = parse(data, source)
    assert settings.database_url == "sqlite:///" + str(tmp_path / "conf" / "data" / "otp.db")
    assert settings.key_file == tmp_path / "conf" / "keys" / "seed.key"
    absolute = parse({"database": {"url": "sqlite:////var/lib/otp.db"}}, source)
    assert absolute.database_url == "sqlite:////var/lib/otp.db"
    pg = "postgresql+psycopg://otp:pw@db.example/otp"
    assert parse({"database": {"url": pg}}, source).database_url == pg
    # The driver spelt out, and a query, change nothing about where the file is.
    spelt = parse({"database": {"url": "sqlite+pysqlite:///data/otp.db?timeout=5"}}, source)
    expected = str(tmp_path / "conf" / "data" / "otp.db")
    assert spelt.database_url == f"sqlite+pysqlite:///{expected}?timeout=5"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:"])
def test_an_in_memory_sqlite_database_is_refused(url: str) -> None:
    # otpctl init said it created the schema there, and kept nothing.
    with pytest.raises(ConfigError) as caught:
        parse({"database": {"url": url}})
    assert str(caught.value) == (
        f"{SOURCE}: [database] url: an in-memory SQLite database keeps nothing"
    )


def test_one_client_may_name_a_network_of_its_own_twice() -> None:
    # Two addresses of one /24 are the same network for the one client: nothing ambiguous.
    client = {**CLIENT, "address": ["10.0.0.1/24", "10.0.0.2/24"]}
    (parsed,) = parse({"clients": [client]}).clients
    assert [str(n) for n in parsed.networks] == ["10.0.0.0/24", "10.0.0.0/24"]


def test_values_are_taken() -> None:
    data = {
        "server": {"listen": [ANY_V4 + ":1645", "[2001:db8::1]:1812"], "workers": 0},
        "policy": {
            "otp_window": 2,
            "lockout_threshold": 3,
            "password_lockout_threshold": 7,
            "unregistered": "reject",
            "challenge_timeout": 60,
            "reject_delay": 0,
            "reply_language": "ja",
        },
        "hashing": {"time_cost": 3, "memory_kib": 65536, "parallelism": 2},
        **with_client(mode="split", address=["10.0.0.0/8", "2001:db8::/32"]),
    }
    settings = parse(data)
    assert settings.server.listen == ((ANY_V4, 1645), ("2001:db8::1", 1812))
    assert settings.server.workers == 0
    assert settings.policy == Policy(
        otp_window=2,
        lockout_threshold=3,
        password_lockout_threshold=7,
        unregistered=UnregisteredPolicy.REJECT,
        challenge_timeout=60,
        reject_delay=0.0,
        reply_language="ja",
    )
    assert settings.hashing == HashingParams(3, 65536, 2)
    assert settings.clients[0].mode is InputMode.SPLIT
    assert len(settings.clients[0].networks) == 2


def test_a_relative_database_in_a_folder_named_in_another_encoding_is_refused() -> None:
    # A Latin-1 folder name: Python holds its byte 0xE9 as a surrogate, which no URL can carry.
    source = Path("/srv/caf\udce9/config.toml")
    with pytest.raises(ConfigError) as refused:
        parse({"database": {"url": "sqlite:///otp.db"}}, source)
    assert "[database] url: the database path" in str(refused.value)
    assert "not UTF-8 text: give an absolute sqlite:/// path" in str(refused.value)
    absolute = parse({"database": {"url": "sqlite:////var/lib/otp.db"}}, source)
    assert absolute.database_url == "sqlite:////var/lib/otp.db"


def test_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "vpn.secret").write_bytes(b"from-a-file-secret\n")
    (tmp_path / "vpn.secret").chmod(0o640)
    data = with_client(secret=None, secret_file="vpn.secret")
    settings = parse_settings(data, tmp_path / "config.toml", read_secret_file)
    assert settings.clients[0].secret == b"from-a-file-secret"


def refusal_of_secret_file(tmp_path: Path, name: str = "vpn.secret") -> str:
    """The configuration error of a client whose ``secret_file`` is ``name`` in ``tmp_path``."""
    data = with_client(secret=None, secret_file=name)
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, tmp_path / "config.toml", read_secret_file)
    return str(caught.value)


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vpn.secret").write_bytes(b"from-a-file-secret\n")
    (tmp_path / "vpn.secret").chmod(0o644)
    assert refusal_of_secret_file(tmp_path) == (
        f"{tmp_path / 'config.toml'}: [[clients]] 'vpn-gw-1' secret_file: "
        f"{tmp_path / 'vpn.secret'}: readable or writable by others; chmod 640 or 600 it"
    )


def test_a_secret_file_others_may_replace_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "vpn.secret").write_bytes(b"from-a-file-secret\n")
    (folder / "vpn.secret").chmod(0o600)
    data = with_client(secret=None, secret_file="secrets/vpn.secret")
    folder.chmod(0o777)
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, tmp_path / "config.toml", read_secret_file)
    assert str(caught.value) == (
        f"{tmp_path / 'config.toml'}: [[clients]] 'vpn-gw-1' secret_file: "
        f"{folder / 'vpn.secret'}: others may write in its folder and replace it; chmod o-w it"
    )
    folder.chmod(0o1777)  # sticky: nobody else may rename over it
    settings = parse_settings(data, tmp_path / "config.toml", read_secret_file)
    assert settings.clients[0].secret == b"from-a-file-secret"


@pytest.mark.parametrize("mode", [0o660, 0o606, 0o620, 0o602], ids=lambda mode: f"{mode:04o}")
def test_a_configuration_file_group_or_others_may_write_is_refused(mode: int) -> None:
    # Whoever may write it could add a client in mode "otp", or point at another database.
    path = Path("/etc/otpradius/config.toml")
    with pytest.raises(ConfigError) as caught:
        check_access(ConfigFile(path, b"", 0o100000 | mode, path.parent, 0o40755))
    assert str(caught.value) == (
        f"{path}: writable by group or others (mode {mode:04o}), who could add a client or "
        "swap the database; chmod 640 it"
    )
    # Read by all is only warned about at start, where it holds a secret.
    check_access(ConfigFile(path, b"", 0o100644, path.parent, 0o40755))


@pytest.mark.parametrize("folder_mode", [0o777, 0o775, 0o757])
def test_a_configuration_in_a_folder_others_may_write_in_is_refused_unless_sticky(
    folder_mode: int,
) -> None:
    # Anyone who may write in the folder could rename a file of their own over it.
    path = Path("/srv/shared/config.toml")
    with pytest.raises(ConfigError) as caught:
        check_access(ConfigFile(path, b"", 0o100640, path.parent, 0o40000 | folder_mode))
    assert str(caught.value) == (
        "/srv/shared: group or others may write in this folder and replace config.toml; "
        "chmod go-w it"
    )
    # As /tmp: nobody may rename or remove another's files.
    check_access(ConfigFile(path, b"", 0o100640, path.parent, 0o41000 | folder_mode))


def test_a_configuration_file_read_keeps_its_content_out_of_repr() -> None:
    read = ConfigFile(Path("c.toml"), b'secret = "s3cr3t-nas"', 0o100600, Path("."), 0o40700)
    assert "s3cr3t" not in repr(read)


@pytest.mark.parametrize("key", ["lockout_threshold", "password_lockout_threshold"])
@pytest.mark.parametrize("value", [1001, 10**20])
def test_a_lockout_threshold_is_at_most_1000(key: str, value: int) -> None:
    # 10**20 is more than SQLite can bind: every failure to count raised OverflowError, so
    # none was ever counted and guessing went on without end.
    with pytest.raises(ConfigError) as caught:
        parse({"policy": {key: value}})
    assert str(caught.value) == f"{SOURCE}: [policy] {key}: must be from 1 to 1000"
    assert getattr(parse({"policy": {key: 1000}}).policy, key) == 1000


def test_an_integer_too_long_for_python_to_read_is_a_configuration_error() -> None:
    raw = b"[policy]\nlockout_threshold = " + b"9" * 5000 + b"\n"
    with pytest.raises(ConfigError) as caught:
        settings_from_bytes(raw, SOURCE, no_secret_files)
    assert str(caught.value) == f"{SOURCE}: invalid TOML: an integer of over 4300 digits"


def test_arrays_nested_deeper_than_the_parser_goes_are_a_configuration_error() -> None:
    raw = b"deep = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    with pytest.raises(ConfigError) as caught:
        settings_from_bytes(raw, SOURCE, no_secret_files)
    assert str(caught.value) == f"{SOURCE}: invalid TOML: arrays or tables nested too deeply"


def test_a_secret_file_named_with_a_nul_is_a_configuration_error(tmp_path: Path) -> None:
    data = with_client(secret=None, secret_file="vpn\x00.secret")
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, tmp_path / "config.toml", read_secret_file)
    message = str(caught.value)
    assert message == (
        f"{tmp_path / 'config.toml'}: [[clients]] 'vpn-gw-1' secret_file: contains a NUL character"
    )


def test_a_client_secret_repr_does_not_show_it() -> None:
    assert "testing123" not in repr(parse(with_client()).clients[0])


LINK_LOCAL_ONLY = " a zone (%interface) is only for a link-local address (fe80::/10)"

# Each refusal's whole line after the file's name: a fragment such as "missing" would pass
# whatever the rest said.
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "unknown table": ({"polcy": {}}, "[polcy]: unknown table"),
    "unknown key": ({"policy": {"otp_windw": 1}}, "[policy] otp_windw: unknown key"),
    "boolean for an int": (
        {"policy": {"otp_window": True}},
        "[policy] otp_window: expected an integer, got a boolean",
    ),
    "boolean for workers": (
        {"server": {"workers": False}},
        "[server] workers: expected an integer, got a boolean",
    ),
    "string for an int": (
        {"hashing": {"time_cost": "2"}},
        "[hashing] time_cost: expected an integer, got a string",
    ),
    "list for an int": (
        {"policy": {"otp_window": [1]}},
        "[policy] otp_window: expected an integer, got a list",
    ),
    "date for a string": (
        {"database": {"url": date(2026, 12, 1)}},
        "[database] url: expected a string, got a date",
    ),
    "float for an int": (
        {"policy": {"lockout_threshold": 5.0}},
        "[policy] lockout_threshold: expected an integer, got a number",
    ),
    "int for a bool": (
        {"logging": {"syslog": 1}},
        "[logging] syslog: expected a boolean, got an integer",
    ),
    "table not a table": ({"policy": 3}, "[policy]: expected a table"),
    "bad unregistered": (
        {"policy": {"unregistered": "allow"}},
        "[policy] unregistered: must be 'password' or 'reject'",
    ),
    "bad language": (
        {"policy": {"reply_language": "fr"}},
        "[policy] reply_language: must be 'en' or 'ja'",
    ),
    "negative window": (
        {"policy": {"otp_window": -1}},
        "[policy] otp_window: must be from 0 to 10",
    ),
    "huge window": ({"policy": {"otp_window": 11}}, "[policy] otp_window: must be from 0 to 10"),
    "zero threshold": (
        {"policy": {"lockout_threshold": 0}},
        "[policy] lockout_threshold: must be from 1 to 1000",
    ),
    "negative delay": (
        {"policy": {"reject_delay": -0.5}},
        "[policy] reject_delay: must be between 0 and 10 seconds",
    ),
    "delay no float can hold": (
        {"policy": {"reject_delay": 10**400}},
        "[policy] reject_delay: must be between 0 and 10 seconds",
    ),
    "negative workers": ({"server": {"workers": -1}}, "[server] workers: must be from 0 to 256"),
    "workers beyond reason": (
        {"server": {"workers": 10**20}},
        "[server] workers: must be from 0 to 256",
    ),
    "endless challenges": (
        {"policy": {"challenge_timeout": 10**12}},
        "[policy] challenge_timeout: must be from 1 to 86400",
    ),
    "memory short of the lanes": (
        {"hashing": {"memory_kib": 8, "parallelism": 4}},
        "[hashing] memory_kib: must be from 32 to 4194304",
    ),
    "memory of another machine": (
        {"hashing": {"memory_kib": 194_560_000}},
        "[hashing] memory_kib: must be from 8 to 4194304",
    ),
    "lanes beyond reason": (
        {"hashing": {"parallelism": 1000}},
        "[hashing] parallelism: must be from 1 to 64",
    ),
    "endless warnings": (
        {"tokens": {"warn_days": 10**9}},
        "[tokens] warn_days: must be from 0 to 3650",
    ),
    "bad facility": (
        {"logging": {"facility": "kern0"}},
        "[logging] facility: unknown facility 'kern0'",
    ),
    "bad level": (
        {"logging": {"level": "loud"}},
        "[logging] level: must be one of debug, error, info, warning",
    ),
    "bad listen": (
        {"server": {"listen": ["localhost:1812"]}},
        "[server] listen: 'localhost' is not an IP address",
    ),
    "listen without port": (
        {"server": {"listen": ["127.0.0.1"]}},
        "[server] listen: '127.0.0.1' is not 'host:port'",
    ),
    "port in other digits": (
        {"server": {"listen": ["127.0.0.1:²"]}},
        "[server] listen: '127.0.0.1:²' is not 'host:port'",
    ),
    "port of 5000 digits": (
        {"server": {"listen": ["127.0.0.1:" + "1" * 5000]}},
        "[server] listen: '127.0.0.1:" + "1" * 5000 + "' is not 'host:port'",
    ),
    "listen not strings": (
        {"server": {"listen": [1812]}},
        "[server] listen: expected a list of 'host:port' strings",
    ),
    "listen to nothing": ({"server": {"listen": []}}, "[server] listen: no address given"),
    "listen with a zone on a global address": (
        {"server": {"listen": ["[fd00::2%eth0]:1812"]}},
        "[server] listen: '[fd00::2%eth0]:1812':" + LINK_LOCAL_ONLY,
    ),
    "listen with a zone no interface could have": (
        {"server": {"listen": ["[fe80::1%eth 0]:1812"]}},
        "[server] listen: '[fe80::1%eth 0]:1812': 'eth 0' is not an interface name or index",
    ),
    "clients not an array": (
        {"clients": {"name": "x"}},
        "[[clients]]: expected an array of tables",
    ),
    "client not a table": ({"clients": ["vpn-gw-1"]}, "[[clients]] #1: expected a table"),
    "client missing name": (with_client(name=None), "[[clients]] #1 name: missing required key"),
    "client missing address": (
        with_client(address=None),
        "[[clients]] #1 address: missing required key",
    ),
    "client missing secret": (
        with_client(secret=None),
        "[[clients]] 'vpn-gw-1' secret: give exactly one of 'secret' and 'secret_file'",
    ),
    "client both secrets": (
        with_client(secret_file="x.secret"),
        "[[clients]] 'vpn-gw-1' secret: give exactly one of 'secret' and 'secret_file'",
    ),
    "client empty secret": (
        with_client(secret=""),
        "[[clients]] 'vpn-gw-1' secret: must not be empty",
    ),
    "client secret file missing": (
        with_client(secret=None, secret_file="gone.secret"),
        "[[clients]] 'vpn-gw-1' secret_file: /etc/otpradius/gone.secret: No such file or directory",
    ),
    "client bad CIDR": (
        with_client(address="10.0.0.0/33"),
        "[[clients]] 'vpn-gw-1' address: '10.0.0.0/33' is not an address or CIDR",
    ),
    "client not an address": (
        with_client(address="vpn.example"),
        "[[clients]] 'vpn-gw-1' address: 'vpn.example' is not an address or CIDR",
    ),
    "client empty address list": (
        with_client(address=[]),
        "[[clients]] 'vpn-gw-1' address: no address given",
    ),
    # A zone is matched against the interface a datagram came in on, which only link-local
    # sources have: on another address the client would never be answered.
    "client zone on a global address": (
        with_client(address="2001:db8::1%eth0"),
        "[[clients]] 'vpn-gw-1' address: '2001:db8::1%eth0':" + LINK_LOCAL_ONLY,
    ),
    "client zone on an IPv4-mapped address": (
        with_client(address="::ffff:192.0.2.1%eth0"),
        "[[clients]] 'vpn-gw-1' address: '::ffff:192.0.2.1%eth0':" + LINK_LOCAL_ONLY,
    ),
    "client zone on an IPv4 address": (
        with_client(address="192.0.2.1%eth0"),
        "[[clients]] 'vpn-gw-1' address: '192.0.2.1%eth0' is not an address or CIDR",
    ),
    "client zone in other digits": (
        with_client(address="fe80::1%²"),
        "[[clients]] 'vpn-gw-1' address: 'fe80::1%²': '²' is not an interface name or index",
    ),
    "client zone longer than an interface name": (
        with_client(address="fe80::%" + "e" * 16 + "/64"),
        f"[[clients]] 'vpn-gw-1' address: 'fe80::%{'e' * 16}/64': '{'e' * 16}' is not an "
        "interface name or index",
    ),
    "client bad mode": (
        with_client(mode="pap"),
        "[[clients]] 'vpn-gw-1' mode: must be split, challenge, auto or otp",
    ),
    "client unknown key": (with_client(port=1812), "[[clients]] #1 port: unknown key"),
    "client wrong type": (
        with_client(require_message_authenticator="yes"),
        "[[clients]] #1 require_message_authenticator: expected a boolean, got a string",
    ),
    "client secret as int": (
        with_client(secret=1234),
        "[[clients]] #1 secret: expected a string, got an integer",
    ),
    "NUL in the database path": (
        {"database": {"url": "sqlite:///otpradius\x00.db"}},
        "[database] url: contains a NUL character",
    ),
    "NUL in the key file": (
        {"secrets": {"key_file": "otp\x00.key"}},
        "[secrets] key_file: contains a NUL character",
    ),
    "not a database URL": (
        {"database": {"url": "not a url"}},
        "[database] url: not a database URL",
    ),
    "unsupported database": (
        {"database": {"url": "mysql://otp:hunter2@db/otp"}},
        "[database] url: unsupported driver 'mysql': use sqlite:///PATH or postgresql+psycopg://…",
    ),
    "postgresql without psycopg": (
        {"database": {"url": "postgresql://otp:hunter2@db/otp"}},
        "[database] url: unsupported driver 'postgresql': use sqlite:///PATH or postgresql+psycopg://…",
    ),
    "empty client name": (
        {"clients": [{**CLIENT, "name": ""}]},
        "[[clients]] #1 name: must not be empty",
    ),
    "blank client name": (
        {"clients": [{**CLIENT, "name": " \t"}]},
        "[[clients]] #1 name: must not be empty",
    ),
    "duplicate client": (
        {"clients": [dict(CLIENT), dict(CLIENT)]},
        "[[clients]] 'vpn-gw-1' name: duplicate client name",
    ),
    "one address for two clients": (
        {"clients": [dict(CLIENT), {**CLIENT, "name": "vpn-gw-2", "address": SHARED}]},
        "[[clients]] 'vpn-gw-2' address: 127.0.0.1/32 is also given for client 'vpn-gw-1'",
    ),
    "one address for two clients, once IPv4-mapped": (
        {"clients": [dict(CLIENT), {**CLIENT, "name": "vpn-gw-2", "address": "::ffff:127.0.0.1"}]},
        "[[clients]] 'vpn-gw-2' address: 127.0.0.1/32 is also given for client 'vpn-gw-1'",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_error_names_the_file_and_the_key(case: str) -> None:
    data, expected = BAD[case]
    with pytest.raises(ConfigError) as caught:
        parse(data)
    message = str(caught.value)
    assert message == f"{SOURCE}: {expected}"
    assert "hunter2" not in message  # a database URL's password is never repeated


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("::ffff:192.0.2.10", "192.0.2.10/32"),
        ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
        ("::FFFF:C000:020A/128", "192.0.2.10/32"),
    ],
)
def test_an_ipv4_mapped_client_address_is_read_as_the_ipv4_address(
    written: str, meant: str
) -> None:
    # An IPv4 NAS's requests come from its IPv4 address (the IPv6 sockets are IPv6-only):
    # kept as an IPv6 network, the client would match no request at all.
    (client,) = parse(with_client(address=written)).clients
    assert client.networks == (ipaddress.ip_network(meant),)


def test_a_secret_file_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    # Read as a file, a FIFO nobody writes blocks for ever: at a reload, the supervisor.
    os.mkfifo(tmp_path / "vpn.secret", 0o600)
    assert refusal_of_secret_file(tmp_path) == (
        f"{tmp_path / 'config.toml'}: [[clients]] 'vpn-gw-1' secret_file: "
        f"{tmp_path / 'vpn.secret'}: not a regular file"
    )
