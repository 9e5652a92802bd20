"""Which addresses a scan may connect to: a host is resolved once, within the fetch's deadline, and every address
it has checked (no loopback, private, link-local, CGNAT, multicast, reserved, nor IPv6 forms that embed such an
IPv4 address) unless private URLs are allowed."""
from __future__ import annotations

import ipaddress
import socket
import threading

from ..scanning.fetch_options import FetchError

NAT64 = ipaddress.ip_network("64:ff9b::/96")


def blocked_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a scan must not connect to ``address`` unless private URLs are allowed, or None if it may."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (reason := blocked_reason(embedded)):
            return f"embeds {embedded}, {reason}"
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved", "site_local"):
        if getattr(ip, f"is_{kind}", False):
            return kind.replace("_", "-")
    if not ip.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT
        return "not globally routable"
    return None


def resolve(host: str, port: int, allow_private: bool = False, timeout: float | None = None) -> list[tuple[int, tuple]]:
    """(family, sockaddr) for every address of ``host``; FetchError blocked_address if any is not public,
    timeout if the resolver has not answered within ``timeout`` seconds (None: wait as long as it takes)."""
    try:
        infos = _lookup(host, port, timeout)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("connection_error", f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    if not allow_private:
        for _, sockaddr in addresses:
            if reason := blocked_reason(sockaddr[0]):
                raise FetchError("blocked_address", f"{host} resolves to {sockaddr[0]} ({reason}); "
                                                    "--allow-private-urls permits it")
    return addresses


def _lookup(host: str, port: int, timeout: float | None) -> list:
    """socket.getaddrinfo with a time limit. getaddrinfo itself has none (a dead DNS server holds it for the
    resolver's own retries, 10-30 s or more), and cannot be cancelled: it runs in a daemon thread, which is
    left to finish on its own if the limit passes, and never holds up the scan or its exit."""
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: list = []

    def ask():
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 - raised below, in the asking thread
            outcome.append(exc)

    thread = threading.Thread(target=ask, name="ipdscan-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise FetchError("timeout", f"cannot resolve {host}: no answer from DNS within {timeout:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
