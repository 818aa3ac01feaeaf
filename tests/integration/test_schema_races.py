"""Nodes set up on one PostgreSQL database: the schema made once, the key file shared."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otpcore.store import make_engine
from otpcore.store.schema import current_revision, head_revision, upgrade
from tests.conftest import PG_URL_ENV, drop_database, require_service, scratch_database
from tests.integration.cli_support import config_text, otpctl_program

NODES = 4


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A PostgreSQL database with no schema, dropped afterwards."""
    base = os.environ.get(PG_URL_ENV)
    require_service(f"postgresql ({PG_URL_ENV})", bool(base))
    assert base is not None
    url = scratch_database(base)
    yield url
    drop_database(base, url)


def node_configs(tmp_path: Path, url: str) -> list[Path]:
    """One configuration folder per node, each with its own key file, on one database."""
    configs = []
    for index in range(NODES):
        folder = tmp_path / f"node{index}"
        folder.mkdir(mode=0o700)
        config = folder / "config.toml"
        config.write_text(f'[database]\nurl = "{url}"\n\n' + config_text(), encoding="utf-8")
        config.chmod(0o600)
        configs.append(config)
    return configs


def run_together(configs: list[Path], *command: str) -> list[subprocess.CompletedProcess[str]]:
    """``otpctl COMMAND`` started on every node at once; each one's result."""
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("OTPRADIUS_CONFIG", None)
    started = [
        subprocess.Popen(
            [*otpctl_program(), "--config", str(config), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for config in configs
    ]
    results = []
    for process in started:
        stdout, stderr = process.communicate(timeout=120)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        results.append(done)
    return results


@pytest.mark.parametrize("command", [("init",), ("db", "upgrade")], ids=["init", "db-upgrade"])
def test_nodes_creating_the_schema_at_once_all_succeed(
    tmp_path: Path, empty_pg: str, command: tuple[str, ...]
) -> None:
    results = run_together(node_configs(tmp_path, empty_pg), *command)
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * NODES
    # Exactly one made the schema; every other one says it found it made.
    made = [r.stdout for r in results if "Created the database schema" in r.stdout
            or "from empty to revision" in r.stdout]  # fmt: skip
    assert len(made) == 1, [r.stdout for r in results]
    engine = make_engine(empty_pg)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_only_if_empty_leaves_an_older_schema_as_it_is(empty_pg: str) -> None:
    engine = make_engine(empty_pg)
    assert upgrade(engine, "0001") is None
    assert upgrade(engine, only_if_empty=True) == "0001"
    assert current_revision(engine) == "0001"
    assert upgrade(engine) == "0001"
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_a_second_nodes_init_says_its_new_key_must_be_the_first_nodes(
    tmp_path: Path, empty_pg: str
) -> None:
    first, second = node_configs(tmp_path, empty_pg)[:2]
    (made,) = run_together([first], "init")
    assert made.returncode == 0
    assert "is a new key" not in made.stdout
    (late,) = run_together([second], "init")
    assert late.returncode == 0
    key = second.parent / "otpradius.key"
    assert f"{key} is a new key, but the database had its schema already" in late.stdout
    assert "put a copy of that node's key file (mode 0600) in its place" in late.stdout
    # Once the key is there, init says nothing more about it.
    (again,) = run_together([second], "init")
    assert "already exists: left as it is" in again.stdout
    assert "is a new key" not in again.stdout


def test_a_rotation_on_postgresql_says_what_the_other_nodes_must_do(
    tmp_path: Path, empty_pg: str
) -> None:
    first, second = node_configs(tmp_path, empty_pg)[:2]
    assert run_together([first], "init")[0].returncode == 0
    shutil.copy2(first.parent / "otpradius.key", second.parent / "otpradius.key")
    assert run_together([first], "key", "rotate", "--prepare")[0].returncode == 0
    shutil.copy2(first.parent / "otpradius.key.new", second.parent / "otpradius.key.new")
    (rotated,) = run_together([first], "key", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "On every other node, move its otpradius.key.new over its otpradius.key" in (
        rotated.stdout
    )
    # Without --prepare no other node has the new key yet: say to copy it, and why.
    (unprepared,) = run_together([first], "key", "rotate")
    assert unprepared.returncode == 0, unprepared.stderr
    key = first.parent / "otpradius.key"
    assert f"Copy {key} (mode 0600) over the key file of every other node now" in (
        unprepared.stdout
    )
