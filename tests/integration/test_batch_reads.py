"""The database thread reads a batch's users and tokens in one SQLite read transaction.

One transaction a batch rather than one a read saves SQLite's file locking for each read; it
must neither hold up another writer nor outlive the batch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from otpcore.app import App
from tests.integration.lifecycle import add_user


def _failures(app: App, login: str) -> int:
    user = app.hot.user(login)
    assert user is not None
    return user.password_failures


def test_a_batch_reads_one_snapshot_and_another_writer_commits_meanwhile(app: App) -> None:
    add_user(app, "taro")
    other_worker = ThreadPoolExecutor(1)  # its own connection, as another process has

    def count_a_failure() -> None:
        with app.hot.transaction() as writer:
            writer.count_password_failure("taro", 10)

    with app.hot.reading():
        assert _failures(app, "taro") == 0
        # Not held up by the open read: the write commits before the block ends.
        other_worker.submit(count_a_failure).result(timeout=10)
        assert _failures(app, "taro") == 0  # the batch's snapshot
    assert _failures(app, "taro") == 1
    other_worker.shutdown()


def test_a_batch_that_failed_leaves_its_thread_free_to_write(app: App) -> None:
    add_user(app, "taro")

    def a_batch_that_fails() -> None:
        with app.hot.reading():
            _failures(app, "taro")
            raise RuntimeError("a bug in the middle of a batch")

    with pytest.raises(RuntimeError):
        a_batch_that_fails()
    # A read transaction left open would refuse BEGIN IMMEDIATE on this connection.
    with app.hot.transaction() as writer:
        writer.count_password_failure("taro", 10)
    assert _failures(app, "taro") == 1
