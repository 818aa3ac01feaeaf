"""The turns that keep a test stopping PostgreSQL from running beside tests using it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.cluster_turns import ClusterTurns

HOLDER = """
import sys, time
from pathlib import Path
from tests.cluster_turns import ClusterTurns
lock, mark, alone = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "alone"
with ClusterTurns(lock).turn(alone=alone):
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
    mark.write_text("released")
"""


def _holder(lock: Path, mark: Path, kind: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(mark), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "held\n"
    return process


def _let_go_soon(holder: subprocess.Popen[str]) -> threading.Timer:
    """Let the holder release its turn a moment after the caller starts waiting for one."""
    assert holder.stdin is not None
    stdin = holder.stdin
    timer = threading.Timer(0.3, lambda: (stdin.write("\n"), stdin.flush()))
    timer.start()
    return timer


def test_a_shared_turn_waits_while_another_process_has_the_cluster_alone(tmp_path: Path) -> None:
    lock, mark = tmp_path / "turns.lock", tmp_path / "released"
    holder = _holder(lock, mark, "alone")
    _let_go_soon(holder)
    with ClusterTurns(lock).turn(alone=False):
        assert mark.exists(), "a shared turn began while another process held the cluster alone"
    assert holder.wait(timeout=10) == 0


def test_a_turn_alone_waits_for_a_shared_turn_and_shared_turns_overlap(tmp_path: Path) -> None:
    lock = tmp_path / "turns.lock"
    holder = _holder(lock, tmp_path / "released", "shared")
    turns = ClusterTurns(lock)
    with turns.turn(alone=False):
        assert not (tmp_path / "released").exists(), "a shared turn waited for another"
        assert not turns.alone
    _let_go_soon(holder)
    with turns.turn(alone=True):
        assert (tmp_path / "released").exists()
        assert turns.alone
    assert not turns.alone
    assert holder.wait(timeout=10) == 0
