"""Time the bulk imports of SPEC §7 on a fresh SQLite file (not a test).

    python bench/imports.py [ROWS] [--pskc-only]

Each import is one transaction, as ``otpctl`` runs it: 100,000 users with ``password_hash``
(user CSV), 100,000 tokens from a token CSV, and 100,000 TOTP keys from a PSKC file under a
pre-shared key (AES-128-CBC + HMAC-SHA1, as vendors send them); then 1,000 tokens into the
inventory those two made, most of it comparing seeds with the inventory's; then a key rotation
re-sealing every seed (one transaction too, which holds up the logins that write meanwhile).
Prints seconds per phase: first the core's phases in-process, then the same three files and
the rotation through the installed ``otpctl`` on another fresh database (process start, file
reading and detection included), each with the command's peak memory. ``--pskc-only`` runs
just the PSKC file through ``otpctl``.

The PSKC file is written here, as RFC 6030 §6.1 lays it out (IV before each CBC ciphertext, an
HMAC-SHA1 ValueMAC over both, the MAC key encrypted under the pre-shared key), not by a library.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from otpcore.app import App, build_app
from otpcore.config import parse_settings
from otpcore.keys import create_key, rotate_key
from otpcore.onboarding import import_users
from otpcore.pskc_import import read_pskc
from otpcore.store import make_engine
from otpcore.store.engine import create_private_sqlite_file
from otpcore.store.schema import upgrade
from otpcore.token_csv import read_token_csv
from otpcore.user_csv import read_user_csv

PSK = bytes(range(16))
CONFIG = "[logging]\nsyslog = false\n"  # the otpctl phase's config.toml: defaults otherwise
T = TypeVar("T")


def fresh_app(folder: Path) -> App:
    (folder / "config.toml").write_text(CONFIG, encoding="utf-8")  # for the otpctl phase
    settings = parse_settings(
        {"logging": {"syslog": False}}, folder / "config.toml", Path.read_bytes
    )
    create_key(settings.key_file)
    create_private_sqlite_file(settings.database_url)
    upgrade(make_engine(settings.database_url))
    return build_app(settings, lambda: datetime.now(UTC))


def timed(label: str, action: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = action()
    print(f"{label:<46} {time.perf_counter() - start:7.2f} s", flush=True)
    return result


def token_csv(rows: int, prefix: str = "T") -> str:
    lines = ["serial,secret,algorithm,digits,period,expires"]
    lines += [f"{prefix}{i:08d},{os.urandom(20).hex()},SHA1,6,60,2031-03-31" for i in range(rows)]
    return "\n".join(lines) + "\n"


def aes128_cbc(key: bytes, plaintext: bytes) -> bytes:
    """IV || AES-128-CBC(PKCS#7-padded plaintext), as an xenc#aes128-cbc CipherValue holds."""
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


PSKC_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" \
xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Version="1.0">
 <pskc:EncryptionKey/>
 <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
  <pskc:MACKey>
   <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
   <xenc:CipherData>
    <xenc:CipherValue>{mac_key}</xenc:CipherValue>
   </xenc:CipherData>
  </pskc:MACKey>
 </pskc:MACMethod>
"""
PSKC_PACKAGE = """ <pskc:KeyPackage>
  <pskc:DeviceInfo>
   <pskc:SerialNo>{serial}</pskc:SerialNo>
   <pskc:ExpiryDate>2031-03-31T00:00:00Z</pskc:ExpiryDate>
  </pskc:DeviceInfo>
  <pskc:Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp" Id="{serial}">
   <pskc:AlgorithmParameters>
    <pskc:ResponseFormat Length="6"/>
   </pskc:AlgorithmParameters>
   <pskc:Data>
    <pskc:Secret>
     <pskc:EncryptedValue>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData>
       <xenc:CipherValue>{secret}</xenc:CipherValue>
      </xenc:CipherData>
     </pskc:EncryptedValue>
     <pskc:ValueMAC>{mac}</pskc:ValueMAC>
    </pskc:Secret>
    <pskc:TimeInterval>
     <pskc:PlainValue>60</pskc:PlainValue>
    </pskc:TimeInterval>
   </pskc:Data>
  </pskc:Key>
 </pskc:KeyPackage>
"""


def pskc_file(rows: int) -> bytes:
    """``rows`` TOTP keys (20-byte seeds, 6 digits, 60 s, an expiry) under the pre-shared key."""
    mac_key = os.urandom(20)
    b64 = base64.b64encode
    parts = [PSKC_HEAD.format(mac_key=b64(aes128_cbc(PSK, mac_key)).decode())]
    for i in range(rows):
        cipher = aes128_cbc(PSK, os.urandom(20))
        mac = hmac.digest(mac_key, cipher, "sha1")
        parts.append(
            PSKC_PACKAGE.format(
                serial=f"P{i:08d}", secret=b64(cipher).decode(), mac=b64(mac).decode()
            )
        )
    parts.append("</pskc:KeyContainer>\n")
    return "".join(parts).encode()


def user_csv(app: App, rows: int) -> str:
    phc = app.hashing.hash("migrated password")  # one real argon2id PHC string, default cost
    lines = ["login,name,class,password_hash,start"]
    lines += [f'user{i:06d},User {i},general,"{phc}",2027-01-04' for i in range(rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the bulk imports of SPEC §7.")
    parser.add_argument("rows", nargs="?", type=int, default=100_000)
    parser.add_argument(
        "--pskc-only", action="store_true", help="only the PSKC file, through otpctl"
    )
    options = parser.parse_args()
    rows: int = options.rows
    print(f"{rows} rows per import, SQLite (WAL, synchronous=FULL), one transaction each")
    if options.pskc_only:
        data = timed("PSKC: write the file (setup)", lambda: pskc_file(rows))
        with tempfile.TemporaryDirectory() as folder:
            through_otpctl(Path(folder) / "otpctl", None, data)
        return
    with tempfile.TemporaryDirectory() as folder:
        app = fresh_app(Path(folder))
        admin = app.admin()

        text = user_csv(app, rows)
        specs = timed(
            "user CSV: parse and validate (password_hash)", lambda: read_user_csv(text, "u")
        )
        timed(
            "user CSV: import (one transaction)",
            lambda: import_users(app.store, app.hashing, app.clock, specs, source="u"),
        )

        text = token_csv(rows)
        tokens = timed("token CSV: parse and validate", lambda: read_token_csv(text, "t"))
        timed(
            "token CSV: import (seal + one transaction)",
            lambda: admin.import_tokens(tokens, source="t"),
        )

        data = timed("PSKC: write the file (setup)", lambda: pskc_file(rows))
        keys = timed("PSKC: parse, decrypt and check MACs", lambda: read_pskc(data, "p", psk=PSK))
        timed(
            "PSKC: import (seal + one transaction)", lambda: admin.import_tokens(keys, source="p")
        )
        few = read_token_csv(token_csv(1000, "F"), "f")
        held = 2 * rows
        timed(
            f"token CSV of 1,000 into {held:,} held (seeds compared)",
            lambda: admin.import_tokens(few, source="f"),
        )
        timed(
            f"key rotate: re-seal {held + 1000:,} seeds (one transaction)",
            lambda: rotate_key(app.store, app.settings.key_file, app.clock),
        )
        users_text = user_csv(app, rows)
        app.store.dispose()
        through_otpctl(Path(folder) / "otpctl", users_text, data)


def through_otpctl(folder: Path, users_text: str | None, pskc: bytes) -> None:
    """The three files through the installed ``otpctl``, each run timed from start to exit;
    the PSKC file alone when ``users_text`` is None."""
    program = shutil.which("otpctl")
    if program is None:
        print("otpctl is not installed (pip install -e .): end-to-end phase skipped")
        return
    folder.mkdir()
    fresh_app(folder).store.dispose()
    files = {"seeds.pskc": pskc}
    if users_text is not None:
        rows = users_text.count("\n") - 1
        files |= {"users.csv": users_text.encode(), "tokens.csv": token_csv(rows, "E").encode()}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    config = str(folder / "config.toml")
    commands = {
        "otpctl user import users.csv": ["user", "import", "users.csv"],
        "otpctl token import tokens.csv": ["token", "import", "tokens.csv"],
        "otpctl token import seeds.pskc --psk …": [
            "token",
            "import",
            "seeds.pskc",
            "--psk",
            PSK.hex(),
        ],
        "otpctl key rotate (every seed of the two token imports)": ["key", "rotate"],
    }
    if users_text is None:
        commands = {label: args for label, args in commands.items() if "seeds.pskc" in label}
    for label, args in commands.items():
        command = [program, "--config", config, *args]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL)
        # wait4, not wait: the command's own peak memory.
        _, status, usage = os.wait4(process.pid, 0)
        took = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"bench/imports.py: {label} failed")
        print(f"{label:<46} {took:7.2f} s, {usage.ru_maxrss / 1024:5.0f} MiB at most", flush=True)


if __name__ == "__main__":
    main()
