"""Fuzz the packet path and the decision for a set time (not part of CI).

    python -m bench.fuzz --seconds 600

Builds a throwaway SQLite workspace with one active user, then feeds random, truncated and
mutated datagrams (bit flips, attribute lengths 0/1/overflowing, duplicated and missing
attributes, oversized User-Password, wrong codes, bad authenticators) through
``RequestHandler.handle`` in every client mode. It stops at the first exception that escapes
the handler or the first Access-Accept for a request that was not the known-good one, and
prints the datagram in hex so it can be replayed; otherwise it prints how many ran.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from otpcore.app import build_app
from otpcore.client_config import ClientConfig
from otpcore.config import parse_settings
from otpcore.keys import create_key
from otpcore.model import Algorithm, InputMode, UserClass
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import upgrade
from otpcore.token_csv import TokenSpec
from otpcore.totp import totp
from radiusd.handler import RequestHandler
from radiusd.nas import decode_reply, encode_request
from radiusd.wire import Attr, Codes

SECRET = b"fuzzing-shared-secret-0123"
PASSWORD = "Fuzz-Passw0rd"
SEED = bytes(range(7, 27))


def _mutate(rng: random.Random, base: bytes) -> bytes:
    choice = rng.randrange(7)
    data = bytearray(base)
    if choice == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if choice == 1:
        return bytes(data[: rng.randrange(0, len(data))])
    if choice == 2:
        for _ in range(rng.randrange(1, 8)):
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data)
    if choice == 3:  # an attribute with length 0, 1 or overflowing
        kind = rng.choice([Attr.USER_NAME, Attr.USER_PASSWORD, Attr.STATE, 80, 33, 26, 255])
        length = rng.choice([0, 1, 2, 255, 200])
        data += bytes([kind, length]) + rng.randbytes(rng.randrange(0, 10))
        if rng.random() < 0.5:
            data[2:4] = len(data).to_bytes(2, "big")
        return bytes(data)
    if choice == 4:  # duplicated attributes
        tail = bytes(data[20:])
        data += tail
        data[2:4] = min(len(data), 65535).to_bytes(2, "big")
        return bytes(data)
    if choice == 5:  # wrong code or length field
        data[0] = rng.choice([0, 2, 3, 4, 5, 11, 12, 13, 40, 255])
        if rng.random() < 0.5:
            data[2:4] = rng.randrange(0, 65536).to_bytes(2, "big")
        return bytes(data)
    size = rng.choice([1, 15, 16, 17, 127, 128])
    if rng.random() < 0.3:  # hidden User-Password of a forbidden length (0, 17, 144, 240)
        hidden = rng.randbytes(rng.choice([0, 17, 144, 240]))
        extra = [(int(Attr.USER_PASSWORD), hidden)]
        return encode_request(SECRET, user_name="alice", extra_attributes=extra)
    return encode_request(SECRET, user_name="alice", password=rng.randbytes(size))


def _as_received(datagram: bytes) -> bytes:
    """The packet a server reads from ``datagram``: octets past its Length field are padding,
    to be ignored (RFC 2865 §3), so the request with them is the request without them."""
    length = int.from_bytes(datagram[2:4], "big") if len(datagram) >= 4 else 0
    return datagram[:length] if 20 <= length <= len(datagram) else datagram


def main(argv: list[str] | None = None) -> int:
    """Fuzz until the time is up or a finding; exit 1 on a finding."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="otpradius-fuzz-"))
    data = {"hashing": {"time_cost": 1, "memory_kib": 64}}
    settings = parse_settings(data, root / "config.toml", Path.read_bytes)
    # Alice must never be suspended, or every datagram after would stop at the lockout: limits
    # beyond any a configuration may give, set on the policy itself.
    endless = replace(settings.policy, lockout_threshold=10**9, password_lockout_threshold=10**9)
    settings = replace(settings, policy=endless)
    create_key(settings.key_file)
    create_private_sqlite_file(settings.database_url)
    upgrade(make_engine(settings.database_url))
    app = build_app(settings, lambda: datetime.now(UTC))
    admin = app.admin()
    admin.add_user("alice", "Alice", UserClass.GENERAL, PASSWORD)
    admin.import_tokens([TokenSpec("FUZZ0001", SEED, period=30)])
    admin.issue("alice", date(2026, 1, 1))
    app.authenticator().activate(
        "alice", "FUZZ0001", totp(SEED, datetime.now(UTC), 30, 6, Algorithm.SHA1)
    )
    handler = RequestHandler(app.authenticator().authenticate, "en")
    clients = [
        ClientConfig("fuzz", (ipaddress.ip_network("127.0.0.1/32"),), SECRET, mode, required)
        for mode in InputMode
        for required in (True, False)
    ]
    deadline = time.monotonic() + args.seconds
    count = 0
    print(f"fuzzing for {args.seconds:.0f} s, seed {seed}, workspace {root}", file=sys.stderr)
    while time.monotonic() < deadline:
        code = totp(SEED, datetime.now(UTC), 30, 6, Algorithm.SHA1)
        base = encode_request(SECRET, user_name="alice", password=PASSWORD + code)
        datagram = _mutate(rng, base)
        client = rng.choice(clients)
        try:
            answer = handler.handle(datagram, client, "127.0.0.1")
        except Exception as exc:
            print(f"FINDING: {type(exc).__name__} escaped; datagram {datagram.hex()}")
            return 1
        # A client that does not require Message-Authenticator may rightly accept a request
        # whose MA attribute was mutated away while the password and OTP stayed right; and any
        # client the request itself, with octets appended past its Length.
        mutated = _as_received(datagram) != base
        if answer.reply is not None and mutated and client.require_message_authenticator:
            reply = decode_reply(answer.reply, SECRET, datagram[4:20])
            if reply.code is Codes.ACCESS_ACCEPT:
                print(f"FINDING: accepted a mutated request; datagram {datagram.hex()}")
                return 1
        count += 1
    shutil.rmtree(root, ignore_errors=True)
    print(f"{count} datagrams, no exception escaped, nothing mutated was accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
