"""A database server that drops connections (an idle timeout, a terminated backend, a restart
or a failover): the batch being written stays one transaction (SPEC §8), and a connection
found dead before anything was written on it is opened again rather than costing a request.
A server that answers but takes no writes is not healthy, and says why.

PostgreSQL only: a SQLite file has no server to drop a connection.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from otpcore.app import App
from otpcore.errors import Unavailable
from otpcore.store import hot_sql
from tests.integration.cli_support import config_text, failed, ok, otpctl_runner, write_config
from tests.integration.lifecycle import add_user

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def terminate_backends(app: App, state: str = "idle") -> int:
    """End every other backend of the test's database in ``state``, as a server restart, a
    failover or a proxy's idle timeout ends them; waits until they are gone. How many."""
    with app.store.engine.connect() as admin:
        ended = admin.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = :state AND pid <> pg_backend_pid()"
            ),
            {"state": state},
        ).scalar_one()
    app.store.engine.dispose()  # the pool's own connections may have been ended too
    return int(ended)


def backend_pid(app: App) -> int:
    """The server process of this thread's authentication path connection."""
    return int(app.hot.run("SELECT pg_backend_pid()", {}).fetchall()[0][0])


def test_a_connection_lost_by_another_thread_leaves_a_batch_on_its_own(
    app: App,
) -> None:
    # A hash thread whose connection the server dropped (an idle timeout, a terminated
    # backend) makes every thread reconnect before its next statement. The database thread
    # was in the middle of a batch: its remaining statements ran on a new connection, each
    # committed at once, and the batch's COMMIT then failed on the old one, so a batch
    # reported as not written was half written.
    add_user(app, "taro")
    add_user(app, "hanako")
    hash_thread = ThreadPoolExecutor(1)
    hash_thread.submit(app.hot.user, "taro").result()  # its own connection, idle afterwards
    lost: list[BaseException] = []
    read: list[int] = []

    def read_on_a_dropped_connection() -> None:
        try:
            taro = app.hot.user("taro")
        except Unavailable as exc:
            lost.append(exc)
        else:
            assert taro is not None
            read.append(taro.password_failures)

    with app.hot.transaction() as writer:
        writer.count_password_failure("taro", 10)
        with app.store.engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND state = 'idle' "
                    "AND pid <> pg_backend_pid()"
                )
            )
        hash_thread.submit(read_on_a_dropped_connection).result()
        writer.count_password_failure("hanako", 10)
    # The hash thread's read went on a new connection, outside the batch, which it did
    # not see uncommitted.
    assert lost == []
    assert read == [0]
    assert app.hot.user("taro").password_failures == 1  # type: ignore[union-attr]
    assert app.hot.user("hanako").password_failures == 1  # type: ignore[union-attr]
    hash_thread.shutdown()


def test_connections_give_up_on_a_silent_server_unless_the_url_says_otherwise(
    app: App,
) -> None:
    # Without limits a host that died mid-request (or a cut network) kept a login's thread,
    # or a connect, waiting for minutes on TCP; the URL's own values stay the operator's.
    from otpcore.store.engine import PG_NETWORK, make_engine

    with app.store.engine.connect() as connection:
        parameters = connection.connection.driver_connection.info.get_parameters()
    for key, value in PG_NETWORK.items():
        assert parameters.get(key) == str(value), key
    own = make_engine(app.settings.database_url + "?connect_timeout=20", unpooled=True)
    with own.connect() as connection:
        parameters = connection.connection.driver_connection.info.get_parameters()
    own.dispose()
    assert parameters["connect_timeout"] == "20"
    assert parameters["tcp_user_timeout"] == "10000"


def test_a_read_on_a_connection_dropped_since_the_last_request_is_read_again(
    app: App,
) -> None:
    # A PostgreSQL restarted, failed over, or a proxy that ends idle connections: the first
    # request after it read on the dead connection and was dropped (or rejected), though the
    # database was there again.
    add_user(app, "taro")
    before = backend_pid(app)
    assert terminate_backends(app) >= 1
    taro = app.hot.user("taro")
    assert taro is not None
    assert taro.login == "taro"
    assert backend_pid(app) != before


def test_a_begin_on_a_connection_dropped_since_the_last_batch_is_sent_again(
    app: App,
) -> None:
    add_user(app, "taro")
    with app.hot.transaction() as writer:
        writer.count_password_failure("taro", 10)
    assert terminate_backends(app) >= 1
    with app.hot.transaction() as writer:
        writer.count_password_failure("taro", 10)
    assert app.hot.user("taro").password_failures == 2  # type: ignore[union-attr]


def test_nothing_is_run_again_once_a_transaction_has_written(app: App) -> None:
    # Its writes went with the connection: the rest on a new one would apply half a batch,
    # and the whole batch again might apply a commit twice. The batch fails, as before.
    add_user(app, "taro")
    add_user(app, "hanako")

    def batch() -> None:
        with app.hot.transaction() as writer:
            writer.count_password_failure("taro", 10)
            assert terminate_backends(app, "idle in transaction") == 1
            writer.user("taro")  # a read inside the transaction is not tried again either
            writer.count_password_failure("hanako", 10)

    with pytest.raises(Unavailable):
        batch()
    assert app.hot.user("taro").password_failures == 0  # type: ignore[union-attr]
    assert app.hot.user("hanako").password_failures == 0  # type: ignore[union-attr]


def test_a_read_is_tried_again_once_only(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that ends every connection as soon as it is made: the request fails as
    # before, after one new connection, rather than going round for ever.
    add_user(app, "taro")
    tries: list[str] = []
    run = app.hot.run

    def on_a_connection_closed_under_it(statement: str, params: dict[str, Any]) -> Any:
        tries.append(statement)
        app.hot._connection().close()
        return run(statement, params)

    monkeypatch.setattr(app.hot, "run", on_a_connection_closed_under_it)
    with pytest.raises(Unavailable):
        app.hot.user("taro")
    assert len(tries) == 2


def test_the_probe_reopens_a_dropped_connection_rather_than_fail(app: App) -> None:
    # Otherwise every node said "database unreachable" and "reachable again", and went
    # silent to Status-Server for a second, after each restart or idle timeout.
    assert app.hot.ping()
    assert terminate_backends(app) >= 1
    assert app.hot.ping(), app.hot.failure


def test_a_read_only_session_fails_the_probe_naming_it_and_is_ended(app: App) -> None:
    # A read-only server answered the probe: Status-Server was answered while every login
    # failed at its commit. Now the probe fails, says why, and the session ends, so that the
    # next connection may reach a server that takes writes (a failover's new primary).
    assert app.hot.ping()
    app.hot.run("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {})
    read_only = backend_pid(app)
    assert not app.hot.ping()
    assert app.hot.failure == "database read-only: transaction_read_only is on"
    assert app.hot.ping(), app.hot.failure  # a new session, which takes writes
    assert app.hot.failure == ""
    assert backend_pid(app) != read_only


def test_a_standby_fails_the_probe_naming_it(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    # No standby to fail over to here: the server's answer is a standby's.
    monkeypatch.setattr(hot_sql, "READ_ONLY_PG", "SELECT true, 'on'")
    assert not app.hot.ping()
    assert app.hot.failure == "database read-only: the server is a standby in recovery"


def test_an_admin_command_on_a_server_that_takes_no_writes_says_so_with_status_69(
    tmp_path: Path, database_tables: dict[str, dict[str, Any]]
) -> None:
    # After a failover the address may lead to a standby for a while: every write of an admin
    # command failed there with "unexpected InternalError (a bug)" and status 1, where a
    # database that cannot take the command is status 69, to be tried again.
    url = str(database_tables["database"]["url"])
    run = otpctl_runner(write_config(tmp_path, f'\n[database]\nurl = "{url}"\n'))
    ok(run("init"))
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"serial,secret\nT-1,{bytes(range(1, 21)).hex()}\n", encoding="utf-8")
    ok(run("token", "import", str(tokens)))
    # A session the server makes read-only, as a standby's are (libpq's options parameter).
    options = {"options": "-c default_transaction_read_only=on"}
    standby = make_url(url).update_query_dict(options).render_as_string(hide_password=False)
    config = tmp_path / "standby.toml"
    config.write_text(config_text() + f'\n[database]\nurl = "{standby}"\n', encoding="utf-8")
    line = failed(otpctl_runner(config)("token", "disable", "T-1"), 69)
    assert line.startswith("otpctl: error: database read-only: "), line
    listed = ok(run("token", "list", "--json")).stdout
    assert '"disabled": false' in listed


def test_an_admin_transaction_whose_connection_ends_says_why(app: App) -> None:
    # otpctl said "database unavailable: AdminShutdown" (or OperationalError: an unlock of
    # more users than a statement takes), which names nothing an operator can act on; the
    # hot path's failures already gave the driver's first line.
    add_user(app, "taro")

    def admin_transaction() -> None:
        with app.store.transaction() as repo:
            repo.user("taro")
            assert terminate_backends(app, "idle in transaction") == 1
            repo.user("taro")

    with pytest.raises(Unavailable) as failed:
        admin_transaction()
    assert str(failed.value) == (
        "database unavailable: AdminShutdown: terminating connection due to administrator command"
    )
