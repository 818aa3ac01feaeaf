"""The server's UDP sockets: shared by the workers through SO_REUSEPORT, and never stolen."""

from __future__ import annotations

import errno
import socket

from otpcore.errors import ListenError
from radiusd.clients import Peer, interface_index


def open_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound with SO_REUSEPORT, so every worker process shares the port.

    Not SO_REUSEADDR: on a UDP socket Linux lets a process of any user that sets it too bind
    the same address and port, and then hands it the NAS's datagrams. SO_REUSEPORT is granted
    only to processes of the same user.
    """
    sock = _udp_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(_endpoint(host, port))
    sock.setblocking(False)
    return sock


def ensure_free(host: str, port: int) -> None:
    """Raise ListenError unless ``host:port`` is free for this server to take.

    The workers share the port through SO_REUSEPORT, which the kernel also grants to any
    other process of the same user: a second server started on it by mistake (a stale one,
    a test instance on another database) would silently get part of the logins. A socket
    bound without the option is refused while anyone holds the port.
    """
    probe = _udp_socket(host)
    try:
        probe.bind(_endpoint(host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"[server] listen {shown_endpoint(host, port)}: address already in use "
                "(is another otp-radiusd or RADIUS server running?)"
            ) from None
        raise _cannot_bind(host, port, exc) from None
    finally:
        probe.close()


def ensure_local(host: str, port: int) -> None:
    """Raise ListenError unless ``host`` is an address of this host (its port is not tried).

    For ``--check``, which runs beside the serving daemon: the port is the daemon's, but an
    address that is not (or no longer) this host's fails the next start all the same.
    """
    probe = _udp_socket(host)
    try:
        address = _endpoint(host, port)
        probe.bind((address[0], 0, *address[2:]))
    except OSError as exc:
        raise _cannot_bind(host, port, exc) from None
    finally:
        probe.close()


def _endpoint(host: str, port: int) -> Peer:
    """The address to bind, with the index of a link-local one's interface (``fe80::1%eth0``).

    As text, bind() leaves the zone out, and the kernel refuses a link-local address
    without one.
    """
    if "%" not in host:
        return (host, port)
    address, _, zone = host.partition("%")
    index = interface_index(zone)
    if index is None:
        raise _cannot_bind(host, port, f"this host has no interface {zone}")
    return (address, port, 0, index)


def _cannot_bind(host: str, port: int, why: OSError | str) -> ListenError:
    reason = why if isinstance(why, str) else why.strerror or type(why).__name__
    return ListenError(f"[server] listen {shown_endpoint(host, port)}: cannot bind: {reason}")


def shown_endpoint(host: str, port: int) -> str:
    """A listen address as the configuration writes it: an IPv6 host in brackets, or its port
    runs into it ("::1:1812" reads as an address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _udp_socket(host: str) -> socket.socket:
    """An unbound UDP socket for ``host``'s family; an IPv6 one takes IPv6 only."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock
