"""A database server that drops one connection (an idle timeout, a terminated backend) while
a batch is being written: the batch stays one transaction (SPEC §8).

PostgreSQL only: a SQLite file has no server to drop a connection.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from otpcore.app import App
from otpcore.errors import Unavailable
from tests.integration.lifecycle import add_user

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


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

    def read_on_a_dropped_connection() -> None:
        try:
            app.hot.user("taro")
        except Unavailable as exc:
            lost.append(exc)

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
    assert len(lost) == 1  # the hash thread saw its connection gone
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
