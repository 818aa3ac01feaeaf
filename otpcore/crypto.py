"""Seed sealing (AES-256-GCM under the key file), and reading and writing the key files.

A sealed seed is ``version (1) || key id (8) || nonce (12) || ciphertext+tag``; the
associated data binds it to its serial and key id, so a sealed seed copied onto another
token's row does not open. A client's ``secret_file`` is read here too, under the same
rules for who may read and replace it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from otpcore.errors import KeyFileError, KeyFileMissing
from otpcore.folders import open_to_others

SEAL_VERSION = 1
KEY_BYTES = 32
KID_BYTES = 8
_NONCE_BYTES = 12
TAG_BYTES = 16  # AES-GCM's authentication tag, which ends every sealed seed
# How often, at most, a seed naming a key the ring lacks re-reads the key file, per key id:
# a node not yet given a rotated key, or a key file gone wrong, sees that seed with every
# login of its token, and each must not read the file again.
REREAD_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class SeedKey:
    """One 32-byte seed key and its id (the first 8 bytes of its SHA-256)."""

    key: bytes = field(repr=False)
    kid: bytes = field(init=False)  # stored beside every seed it seals
    cipher: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: a server opens a seed for every request, an import every seed held.
        # AESGCM keeps no state between calls, so threads may share it.
        object.__setattr__(self, "kid", hashlib.sha256(self.key).digest()[:KID_BYTES])
        object.__setattr__(self, "cipher", AESGCM(self.key))


@dataclass(frozen=True, slots=True)
class Keyring:
    """The current key, which seals, and any key a sealed seed may still name."""

    current: SeedKey
    others: tuple[SeedKey, ...] = ()
    # The key file it was read from: re-read when a seed names a key this ring does not hold,
    # so a running server keeps opening seeds after ``otpctl key rotate`` replaced the file.
    source: Path | None = None
    learned: dict[bytes, SeedKey] = field(default_factory=dict, repr=False, compare=False)
    # Key ids whose re-read found no key: when, and why ("" when the file read but lacked it).
    misses: dict[bytes, tuple[float, str]] = field(default_factory=dict, repr=False, compare=False)
    reread_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    ticks: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def seal(self, serial: str, secret: bytes) -> bytes:
        """Encrypt a token secret for storage."""
        kid = self.current.kid
        nonce = os.urandom(_NONCE_BYTES)
        body = self.current.cipher.encrypt(nonce, secret, _aad(serial, kid))
        return bytes([SEAL_VERSION]) + kid + nonce + body

    def unseal(self, serial: str, sealed: bytes) -> bytes:
        """Decrypt a stored token secret; raises KeyFileError if no key of the ring opens it."""
        if len(sealed) < 1 + KID_BYTES + _NONCE_BYTES + TAG_BYTES or sealed[0] != SEAL_VERSION:
            raise KeyFileError(f"sealed seed of token {serial} has an unknown format")
        kid = sealed[1 : 1 + KID_BYTES]
        nonce = sealed[1 + KID_BYTES : 1 + KID_BYTES + _NONCE_BYTES]
        body = sealed[1 + KID_BYTES + _NONCE_BYTES :]
        key, trouble = self._key(kid)
        if key is None:
            # With the reason a re-read failed, if it did: an operator told only that the key
            # is not held hunts for a missing rotation when the file's mode is at fault.
            why = f", and re-reading it failed: {trouble}" if trouble else ""
            raise KeyFileError(
                f"the seed of token {serial} names a key the key file does not hold{why}"
            )
        try:
            return key.cipher.decrypt(nonce, body, _aad(serial, kid))
        except InvalidTag:
            raise KeyFileError(
                f"the seed of token {serial} does not open with the key file"
            ) from None

    def _key(self, kid: bytes) -> tuple[SeedKey | None, str]:
        """The key of ``kid``, re-reading the key file for one not held; else why it failed."""
        for held in (self.current, *self.others):
            if held.kid == kid:
                return held, ""
        key = self.learned.get(kid)
        if key is not None or self.source is None:
            return key, ""
        with self.reread_lock:  # one thread reads; the others take what it found
            key = self.learned.get(kid)
            if key is not None:
                return key, ""
            now = self.ticks()
            miss = self.misses.get(kid)
            if miss is not None and now - miss[0] < REREAD_INTERVAL_S:
                return None, miss[1]
            trouble = ""
            try:
                for fresh in _reread(self.source):
                    self.learned.setdefault(fresh.kid, fresh)
            except KeyFileError as exc:
                trouble = str(exc)
            key = self.learned.get(kid)
            if key is not None:
                self.misses.pop(kid, None)
                return key, ""
            for stale in [k for k, (at, _) in self.misses.items() if now - at >= REREAD_INTERVAL_S]:
                del self.misses[stale]
            self.misses[kid] = (now, trouble)
            return None, trouble

    def check_current(self, seeds_kid: bytes | None = None) -> None:
        """Raise KeyFileError unless this ring still seals with the key file's key.

        Called by a command that seals seeds, inside its transaction: a seed sealed under a
        key that ``otpctl key rotate`` has just retired would never open again.
        ``seeds_kid``: the key id one of the database's seeds names (None without seeds).
        """
        if self.source is None:
            return
        pending = pending_key_path(self.source)
        if key_file_exists(pending):
            if seeds_kid is not None and read_key(pending).kid == seeds_kid:
                # Another node finished the rotation this node was prepared for (or this
                # host's rotation committed and stopped before renaming the key): the seeds
                # are sealed under the pending key already, and re-sealing every one of them
                # again, as 'key rotate' would, only holds up the logins for nothing.
                raise KeyFileError(
                    f"{pending}: the database's seeds are already sealed under this key, the "
                    "rotation having been finished (on another node, or here before it could "
                    f"replace the key file); move it over the key file (mv {pending} "
                    f"{self.source}), then run this again (nothing was written)"
                )
            raise KeyFileError(
                f"{pending}: a key rotation is unfinished; run 'otpctl key rotate' to finish "
                "it, then run this again (nothing was written)"
            )
        if read_key(self.source).kid != self.current.kid:
            raise KeyFileError(
                f"{self.source}: the key was rotated while this command ran; run it again "
                "(nothing was written)"
            )

    def sealed_kid(self, sealed: bytes) -> bytes:
        """The key id a sealed seed names."""
        return sealed[1 : 1 + KID_BYTES]


def seal_tag(sealed: bytes) -> bytes:
    """What tells this sealing of a seed from any other: the authentication tag it ends with."""
    # Every seal draws a fresh nonce, so two seals of any seeds share a tag by a chance of
    # 2**-128; a value written without the key opens with no key, whatever its tag.
    return sealed[-TAG_BYTES:]


def _aad(serial: str, kid: bytes) -> bytes:
    return b"otpradius-seed\x00" + serial.encode("utf-8") + b"\x00" + kid


def pending_key_path(path: Path) -> Path:
    """Where ``key rotate`` keeps the new key until every seed is re-sealed under it."""
    return path.with_name(path.name + ".new")


def read_secret_file(path: Path) -> bytes:
    """A client's ``secret_file``; OSError if it cannot be read or others may read it."""
    found = path.stat()
    if not stat.S_ISREG(found.st_mode):
        # A FIFO or a device would block the read: at a reload, the supervisor with it.
        raise OSError(errno.EINVAL, "not a regular file")
    # Group access is allowed (root:otpradius 0640 is the usual way to hand a service a
    # secret); a NAS secret anyone on the host can read is not a secret.
    if stat.S_IMODE(found.st_mode) & 0o007:
        raise OSError(errno.EACCES, "readable or writable by others; chmod 640 or 600 it")
    # Nor one that others may replace with a secret of their choosing, taken at the next
    # reload; the sticky bit keeps them from renaming over a file that is not theirs.
    folder = os.stat(os.path.dirname(os.path.realpath(path))).st_mode
    if folder & stat.S_IWOTH and not folder & stat.S_ISVTX:
        raise OSError(errno.EACCES, "others may write in its folder and replace it; chmod o-w it")
    return path.read_bytes()


def read_key(path: Path) -> SeedKey:
    """Read one key file, refusing one that group or others can read."""
    missing = f"{path}: key file not found"
    try:
        st = path.stat()
    except FileNotFoundError:
        # What to do depends on the database (run init, or restore the key its seeds need):
        # build_app says which. A running server's log says only this.
        raise KeyFileMissing(missing) from None
    except OSError as exc:
        raise _cannot("read", path, exc) from None
    if stat.S_ISDIR(st.st_mode):
        # Before its mode: a folder's 0755 is no key open to others, nor one to chmod 600.
        raise _cannot("read", path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or a device would block the read, and with it the server's start.
        raise _cannot("read", path, OSError(errno.EINVAL, "not a regular file"))
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"{path}: key file is readable by group or others; chmod 600 it")
    _refuse_open_folder(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        # Moved away between the two looks: the same missing file, said the same way (the
        # server's "key file unusable" line, and what to do about it, must not depend on
        # which look the move fell between).
        raise KeyFileMissing(missing) from None
    except OSError as exc:
        raise _cannot("read", path, exc) from None
    if len(data) != KEY_BYTES:
        raise KeyFileError(f"{path}: key file must hold exactly {KEY_BYTES} bytes")
    return SeedKey(data)


def _refuse_open_folder(path: Path) -> None:
    """KeyFileError if others may write in the key file's folder (as given or resolved)."""
    # They could swap the key, or plant the pending key that the next ``key rotate`` re-seals
    # every seed under. Group may, as for the database's folder.
    try:
        folder = open_to_others(path)
    except OSError as exc:
        raise _cannot("read", path, exc) from None
    if folder is not None:
        raise KeyFileError(
            f"{folder}: others may write in the key file's folder and replace {path.name} "
            f"or plant {pending_key_path(path).name}; chmod o-w it"
        )


def key_file_exists(path: Path) -> bool:
    """Whether there is a file at ``path``; KeyFileError when that cannot be told."""
    try:
        path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        # Not Path.exists(): it raises PermissionError as it is, and takes a path through a
        # file for no file, which an init would then fail to create with another reason.
        raise _cannot("read", path, exc) from None
    return True


def _cannot(action: str, path: Path, exc: OSError) -> KeyFileError:
    # The system's reason only: the exception's own text repeats paths, not always this one.
    reason = exc.strerror or str(exc) or type(exc).__name__
    return KeyFileError(f"{path}: cannot {action} the key file: {reason}")


def _reread(path: Path) -> tuple[SeedKey, ...]:
    """The keys of a key file and its pending successor, for a running ring."""
    # The pending key first: ``key rotate`` renames it over the key file right after its
    # commit, and read the other way round, a re-read between the two would hold neither.
    pending = pending_key_path(path)
    keys: tuple[SeedKey, ...] = ()
    if key_file_exists(pending):
        try:
            keys = (read_key(pending),)
        except KeyFileError:
            if key_file_exists(pending):
                raise
            # Renamed over the key file meanwhile: read there below.
    return (*keys, read_key(path))


def load_keyring(path: Path) -> Keyring:
    """The keyring of a key file, plus the pending key of an interrupted rotation."""
    current = read_key(path)
    pending = pending_key_path(path)
    others = (read_key(pending),) if key_file_exists(pending) else ()
    return Keyring(current, others, source=path)


def new_key() -> SeedKey:
    """A fresh random seed key (not yet in any file)."""
    return SeedKey(os.urandom(KEY_BYTES))


def write_new_key(path: Path, owner_of: Path | None = None, key: SeedKey | None = None) -> SeedKey:
    """Create a key file with mode 0600, of ``key`` or a fresh one; never overwrites an
    existing file.

    ``owner_of``: a key file whose owner and group the new one takes, where this process may
    give them (root may): a rotation run as root must not leave the daemon's own user with a
    key file it cannot read.
    """
    _refuse_open_folder(path)
    key = key if key is not None else new_key()
    try:
        _write_linked(path, key.key, owner_of)
    except OSError as exc:
        raise _cannot("create", path, exc) from None
    return key


def _write_linked(path: Path, data: bytes, owner_of: Path | None) -> None:
    # Written whole under a temporary name, then linked to its own: a crash or a full disk
    # in the middle must not leave a short file there, which every start and every otpctl
    # command would refuse until someone removed it by hand.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        try:
            if owner_of is not None:
                _take_owner(fd, owner_of)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, path)  # FileExistsError rather than overwrite
        # The name must be on disk before anything is sealed under the key: a power cut could
        # otherwise lose the link after seeds sealed under the key were committed.
        fsync_dir(path.parent)
    finally:
        os.unlink(temporary)


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (a link, a rename) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_owner(fd: int, model: Path) -> None:
    try:
        info = model.stat()
        os.fchown(fd, info.st_uid, info.st_gid)
    except PermissionError:
        pass  # not root: the file stays this user's, as the model most likely is
