"""The lines a log sink holds for a reader that takes none for now."""

from __future__ import annotations

import os

from radiusd import held_lines
from radiusd.held_lines import HELD_LINES, HeldLines


def test_the_hold_keeps_its_number_of_lines_in_order_and_counts_the_rest_dropped() -> None:
    held = HeldLines()
    assert not held
    for number in range(HELD_LINES):
        held.hold(b"line %d" % number)
    assert (len(held.lines), held.dropped) == (HELD_LINES, 0)
    held.hold(b"one too many")
    held.hold(b"and another")
    assert (len(held.lines), held.dropped) == (HELD_LINES, 2)
    # The oldest are kept: they say what happened first, and the count says what came after.
    assert (held.lines[0], held.lines[-1]) == (b"line 0", b"line %d" % (HELD_LINES - 1))


def test_forgetting_drops_the_lines_and_their_count() -> None:
    held = HeldLines()
    for number in range(HELD_LINES + 3):
        held.hold(b"line %d" % number)
    held.forget()
    assert not held
    assert (len(held.lines), held.dropped) == (0, 0)


class _Sink:
    def __init__(self) -> None:
        self.held = HeldLines()
        self.sent = 0

    def send_held(self) -> None:
        self.sent += len(self.held.lines)
        self.held.lines.clear()

    def forget_held(self) -> None:
        self.held.forget()


def test_a_forked_child_forgets_what_its_parent_holds_and_the_parent_keeps_it() -> None:
    # A worker forked while the supervisor held lines would send them too: logged twice.
    sink = _Sink()
    held_lines.register(sink)
    sink.held.hold(b"said before the fork")
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if nothing is held there
        os._exit(0 if not sink.held and sink.held.dropped == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert list(sink.held.lines) == [b"said before the fork"]
    held_lines.send_held()
    assert sink.sent == 1
