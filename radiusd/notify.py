"""systemd readiness notification (sd_notify), without a library."""

from __future__ import annotations

import os
import socket


def sd_notify(message: str) -> bool:
    """Send a state line to systemd if started as Type=notify; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        except OSError:
            return False
    return True
