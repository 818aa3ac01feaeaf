"""A running server's keyring: a seed under a key it lacks re-reads the key file, and says why
when that fails (real files under tmp_path, a fake monotonic clock)."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from otpcore import crypto
from otpcore.crypto import (
    REREAD_INTERVAL_S,
    Keyring,
    SeedKey,
    load_keyring,
    pending_key_path,
    read_key,
    write_new_key,
)
from otpcore.errors import KeyFileError, KeyFileMissing
from otpcore.keys import prepare_rotation

SERIAL = "23456789"
SEED = bytes(range(20))


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    path = folder / "otpradius.key"
    write_new_key(path)
    return path


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every key file the keyring reads, in order."""
    seen: list[Path] = []

    def counted(path: Path) -> SeedKey:
        seen.append(path)
        return read_key(path)

    monkeypatch.setattr(crypto, "read_key", counted)
    return seen


def running(key_file: Path, ticks: Ticks) -> Keyring:
    """The keyring a server read at start."""
    return dataclasses.replace(load_keyring(key_file), ticks=ticks)


def sealed_under_next_key(key_file: Path) -> tuple[bytes, SeedKey]:
    """A seed sealed under the prepared next key (``KEY.new``), as ``key rotate`` seals it."""
    pending, _ = prepare_rotation(key_file)
    new = read_key(pending)
    return Keyring(new).seal(SERIAL, SEED), new


def finish_rotation(key_file: Path) -> None:
    os.replace(pending_key_path(key_file), key_file)


def open_to_group(path: Path, _: pytest.MonkeyPatch) -> str:
    path.chmod(0o640)
    return "key file is readable by group or others; chmod 600 it"


def open_to_others(path: Path, _: pytest.MonkeyPatch) -> str:
    path.chmod(0o644)
    return "key file is readable by group or others; chmod 600 it"


def emptied(path: Path, _: pytest.MonkeyPatch) -> str:
    path.write_bytes(b"")
    return "key file must hold exactly 32 bytes"


def a_directory(path: Path, _: pytest.MonkeyPatch) -> str:
    path.unlink()
    path.mkdir(mode=0o700)
    return f"cannot read the key file: {os.strerror(errno.EISDIR)}"


def unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # As root (the tests' user) a mode of 000 does not keep the file from being read.
    read_bytes = Path.read_bytes

    def refused(self: Path) -> bytes:
        if self == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refused)
    return f"cannot read the key file: {os.strerror(errno.EACCES)}"


def removed(path: Path, _: pytest.MonkeyPatch) -> str:
    path.unlink()
    return "key file not found"


Breakage = Callable[[Path, pytest.MonkeyPatch], str]
BREAKAGES = [open_to_group, open_to_others, emptied, a_directory, unreadable]


# The key file after a rotation, or KEY.new after a prepare (where none is no trouble: the
# key is simply not held, which the next test says).
WHERE_BROKEN = [
    *(pytest.param(b, True, id=f"{b.__name__}-rotated") for b in [*BREAKAGES, removed]),
    *(pytest.param(b, False, id=f"{b.__name__}-prepared") for b in BREAKAGES),
]


@pytest.mark.parametrize(("breakage", "finished"), WHERE_BROKEN)
def test_a_seed_under_a_key_not_held_names_why_re_reading_the_key_file_failed(
    key_file: Path,
    ticks: Ticks,
    monkeypatch: pytest.MonkeyPatch,
    breakage: Breakage,
    finished: bool,
) -> None:
    # The message said "does not open with the key file", and the operator looked for a
    # rotation missing on this node when the file's mode was the trouble.
    ring = running(key_file, ticks)
    sealed, new = sealed_under_next_key(key_file)
    if finished:
        finish_rotation(key_file)
    broken = key_file if finished else pending_key_path(key_file)
    reason = breakage(broken, monkeypatch)
    with pytest.raises(KeyFileError) as caught:
        ring.unseal(SERIAL, sealed)
    message = str(caught.value)
    assert message == (
        f"the seed of token {SERIAL} names a key the key file does not hold, "
        f"and re-reading it failed: {broken}: {reason}"
    )
    assert new.key.hex() not in message
    assert "\n" not in message


def test_a_key_file_without_the_key_says_the_key_is_not_held(key_file: Path, ticks: Ticks) -> None:
    # A node whose copy of the key file was not given the rotated key.
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    pending_key_path(key_file).unlink()
    with pytest.raises(KeyFileError) as caught:
        ring.unseal(SERIAL, sealed)
    assert str(caught.value) == f"the seed of token {SERIAL} names a key the key file does not hold"


def test_a_seed_that_a_held_key_does_not_open_says_so_without_a_re_read(
    key_file: Path, ticks: Ticks, reads: list[Path]
) -> None:
    ring = running(key_file, ticks)
    reads.clear()
    tampered = bytearray(ring.seal(SERIAL, SEED))
    tampered[-1] ^= 1
    for sealed in (bytes(tampered), ring.seal("34567890", SEED)):
        with pytest.raises(KeyFileError) as caught:
            ring.unseal(SERIAL, sealed)
        assert str(caught.value) == f"the seed of token {SERIAL} does not open with the key file"
    assert reads == []


@pytest.mark.parametrize("breakage", [*BREAKAGES, removed], ids=lambda b: b.__name__)
def test_a_re_read_that_keeps_failing_reads_the_file_at_most_once_a_second(
    key_file: Path,
    ticks: Ticks,
    reads: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    breakage: Breakage,
) -> None:
    # Every login of such a token comes here: a flood of them must not become one of reads.
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    finish_rotation(key_file)
    reason = breakage(key_file, monkeypatch)
    reads.clear()
    for _ in range(100):
        with pytest.raises(KeyFileError, match="re-reading it failed") as caught:
            ring.unseal(SERIAL, sealed)
        assert str(caught.value).endswith(f"{key_file}: {reason}")  # the reason, every time
    assert reads == [key_file]
    ticks.now += REREAD_INTERVAL_S / 2
    with pytest.raises(KeyFileError, match="re-reading it failed"):
        ring.unseal(SERIAL, sealed)
    assert reads == [key_file]
    ticks.now += REREAD_INTERVAL_S / 2
    with pytest.raises(KeyFileError, match="re-reading it failed"):
        ring.unseal(SERIAL, sealed)
    assert reads == [key_file, key_file]


def test_a_key_file_mended_is_picked_up_at_the_next_re_read(
    key_file: Path, ticks: Ticks, reads: list[Path]
) -> None:
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    finish_rotation(key_file)
    key_file.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by group or others"):
        ring.unseal(SERIAL, sealed)
    key_file.chmod(0o600)
    with pytest.raises(KeyFileError, match="readable by group or others"):
        ring.unseal(SERIAL, sealed)  # within the second: the file is not read again yet
    ticks.now += REREAD_INTERVAL_S
    assert ring.unseal(SERIAL, sealed) == SEED
    reads.clear()
    ticks.now += 3600
    assert ring.unseal(SERIAL, sealed) == SEED
    assert reads == []  # learned: never read again
    assert ring.misses == {}


def test_a_key_file_given_the_key_later_is_read_at_most_once_a_second_meanwhile(
    key_file: Path, ticks: Ticks, reads: list[Path]
) -> None:
    # A node that has not been given the rotated key yet (README, `key rotate --prepare`).
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    kept = key_file.with_name("next.key")
    pending_key_path(key_file).rename(kept)
    reads.clear()
    for _ in range(100):
        with pytest.raises(KeyFileError, match=r"names a key the key file does not hold$"):
            ring.unseal(SERIAL, sealed)
    assert reads == [key_file]
    kept.rename(key_file)  # the operator's mv
    ticks.now += REREAD_INTERVAL_S
    assert ring.unseal(SERIAL, sealed) == SEED


@pytest.mark.parametrize("finished", [True, False], ids=["rotated", "prepared"])
def test_a_rotated_key_is_picked_up_at_once(
    key_file: Path, ticks: Ticks, reads: list[Path], finished: bool
) -> None:
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    if finished:
        finish_rotation(key_file)
    assert ring.unseal(SERIAL, sealed) == SEED
    # A second rotation within the same second: a key id never seen is read for at once.
    sealed, _ = sealed_under_next_key(key_file)
    finish_rotation(key_file)
    assert ring.unseal(SERIAL, sealed) == SEED
    assert ring.misses == {}


def test_a_rotation_finishing_during_the_re_read_is_still_picked_up(
    key_file: Path, ticks: Ticks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `key rotate` renames KEY.new over the key file right after its commit, which is when
    # the first logins under the new key arrive: a re-read found neither file holding it.
    ring = running(key_file, ticks)
    sealed, _ = sealed_under_next_key(key_file)
    pending = pending_key_path(key_file)

    def renamed_first(path: Path) -> SeedKey:
        if path == pending:
            finish_rotation(key_file)
        return read_key(path)

    monkeypatch.setattr(crypto, "read_key", renamed_first)
    assert ring.unseal(SERIAL, sealed) == SEED


def test_a_key_file_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    # Read as a file, a FIFO nobody writes would hold the server's start for ever.
    path = tmp_path / "otpradius.key"
    os.mkfifo(path, 0o600)
    with pytest.raises(KeyFileError) as caught:
        read_key(path)
    assert str(caught.value) == f"{path}: cannot read the key file: not a regular file"


def test_a_key_file_moved_away_as_it_is_read_is_said_to_be_missing(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Moved between the look at its mode and the read (an operator's mv, a restore), it was
    # "cannot read the key file: No such file or directory" instead of the missing file the
    # server's log, and the advice that goes with it, name.
    read_bytes = Path.read_bytes

    def moved(self: Path) -> bytes:
        os.replace(self, self.with_name("kept.key"))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", moved)
    with pytest.raises(KeyFileMissing) as caught:
        read_key(key_file)
    assert str(caught.value) == f"{key_file}: key file not found"


# The sealed-seed format (SPEC §8): what a database written by an earlier release holds.

FORMAT_KEY = SeedKey(bytes(range(32)))
# Version 1, the key's id, a nonce, and AES-256-GCM of the RFC 6238 SHA-1 seed for token
# 23456789, as `Keyring.seal` wrote it. Every later release must open it.
SEALED_V1 = bytes.fromhex(
    "01630dcd2966c433665086930aa363ba86f0d559790d9e93beeef497d37013ba9d"
    "b3eebc0161701c1f68ef6eb53362eca88f49e4c2c02c536e"
)


def test_a_seed_sealed_by_format_1_still_opens() -> None:
    assert FORMAT_KEY.kid.hex() == "630dcd2966c43366"  # the first 8 bytes of its SHA-256
    assert Keyring(FORMAT_KEY).unseal(SERIAL, SEALED_V1) == b"12345678901234567890"


def test_a_sealed_seed_opens_only_for_its_own_token() -> None:
    # The serial is associated data: a seed copied into another token's row (by anyone
    # who can write the database) does not open there, so it cannot lend its codes.
    with pytest.raises(KeyFileError, match="the seed of token 34567890 does not open"):
        Keyring(FORMAT_KEY).unseal("34567890", SEALED_V1)


@pytest.mark.parametrize(
    "sealed",
    [b"", SEALED_V1[:36], bytes([2]) + SEALED_V1[1:], bytes([0]) + SEALED_V1[1:]],
    ids=["empty", "shorter-than-a-tag", "version-2", "version-0"],
)
def test_a_value_that_is_no_sealed_seed_is_named_an_unknown_format(sealed: bytes) -> None:
    with pytest.raises(KeyFileError, match=f"sealed seed of token {SERIAL} has an unknown format"):
        Keyring(FORMAT_KEY).unseal(SERIAL, sealed)


def test_a_seed_with_no_ciphertext_but_its_tag_is_a_seed_that_does_not_open() -> None:
    # The shortest value of the format: version, key id, nonce and tag. It is read as a
    # sealed seed (and refused by its tag), not as another format.
    shortest = SEALED_V1[:21] + SEALED_V1[-16:]
    with pytest.raises(KeyFileError, match="does not open with the key file"):
        Keyring(FORMAT_KEY).unseal(SERIAL, shortest)
