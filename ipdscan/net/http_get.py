"""An HTTP(S) GET that is safe to point at the open internet.

A URL's host is resolved once and every address checked (``addresses``: no loopback, private, link-local, CGNAT,
multicast, reserved, nor IPv6 forms that embed such an IPv4 address) unless ``allow_private``;
the connection then goes to the checked address itself, so a second DNS answer cannot rebind it,
with the original Host header and, for https, TLS verified against the host name. Redirects are
followed by hand and each hop is checked again. Sizes are capped while streaming, and every
send and receive is bounded by both the read timeout and the URL's total deadline (``deadline_socket``), one deadline for
every lookup, connection, redirect and retry. Credentials in the URL (user:password@) are sent as
HTTP Basic authorization to that URL's host, and never appear in an error message.

Proxies: HTTPS_PROXY / HTTP_PROXY (and lower-case forms) name an http:// proxy for that scheme's URLs, NO_PROXY
the hosts to reach directly (urllib's rules). https goes through a CONNECT tunnel, with TLS verified end to end
against the URL's host; http is sent to the proxy in absolute form. The trust model: the proxy is the user's own,
so its address is never checked; the target still is. A proxy resolves names itself, so the target's name is
resolved here too and every address checked as without a proxy (a name this machine cannot resolve is refused:
the check cannot be made), then the proxy is asked for the name, which keeps its allowlists working. What the
proxy's own lookup returns is the proxy's to police: the address pinning against DNS rebinding holds only on
direct connections. --allow-private-urls (``allow_private``) skips the check, and the local lookup, entirely.

Built on the standard library's http.client, with the socket supplied by this module: pinning the
address, the per-read deadline and the streaming cap need control of the socket, which urllib3 would
only give through its private connection classes, and the stdlib adds no dependency.

Failures are FetchError values, their codes those of ``formats.ERROR_CODES``.
"""
from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin, urlsplit

from ..scanning.fetch_options import FetchError, FetchOptions
from ..scanning.urls import redact_credentials, url_problem
from .addresses import resolve
from .deadline_socket import DeadlineReader, DeadlineSocket, connect, time_left, tls_context

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
MAX_BACKOFF = 8.0
URL_SAFE = "".join(map(chr, range(0x21, 0x7F)))  # quote only spaces and non-ASCII; keep existing %XX escapes


def fetch_url(url: str, options: FetchOptions) -> bytes:
    """The body at ``url``, within one deadline for everything: lookups, connections, reads, redirects and retries."""
    deadline = time.monotonic() + options.total_timeout
    attempt = 0
    while True:
        try:
            return _follow(url, options, deadline)
        except FetchError as exc:
            transient = exc.code in ("timeout", "connection_error") or exc.code.startswith("http_5")
            backoff = min(options.retry_backoff * 2**attempt, MAX_BACKOFF)
            if not transient or attempt >= options.retries or time.monotonic() + backoff >= deadline:
                raise FetchError(exc.code, redact_credentials(exc.message)) from None
        time.sleep(backoff)
        attempt += 1


def _follow(url: str, options: FetchOptions, deadline: float) -> bytes:
    """GET ``url``, following redirects by hand: each hop is one more checked request."""
    for hop in range(options.max_redirects + 1):
        try:
            response = _get(url, options, deadline)
        except FetchError as exc:
            if hop:
                raise FetchError(exc.code, f"after a redirect to {url}: {exc.message}") from None
            raise
        if isinstance(response, bytes):
            return response
        url = response
    raise FetchError("too_many_redirects", f"more than {options.max_redirects} redirects, the last to {url}")


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII (IDNA for international names), no brackets
    port: int
    path: str  # the request target: path and query, quoted
    host_header: str
    authorization: str | None  # Basic credentials from the URL's user:password@, for this URL's host only


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # Basic credentials from the proxy URL's user:password@


def proxy_for(target: _Target) -> _Proxy | None:
    """The proxy the environment names for ``target``'s scheme, or None (none set, or NO_PROXY covers the host)."""
    proxies = urllib.request.getproxies_environment()
    proxy_url = proxies.get(target.scheme)
    if not proxy_url or urllib.request.proxy_bypass_environment(target.host, proxies):
        return None
    parts = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    try:
        port = parts.port or DEFAULT_PORTS["http"]
    except ValueError:
        port = None
    if parts.scheme.lower() != "http" or not parts.hostname or port is None:
        raise FetchError("connection_error", f"{target.scheme.upper()}_PROXY must be an http://host:port proxy, "
                                             f"not {redact_credentials(proxy_url)!r}")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("utf-8", "surrogateescape")
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    return _Proxy(parts.hostname, port, authorization)


def _target(url: str) -> _Target:
    if problem := url_problem(url):
        raise FetchError(*problem)
    parts = urlsplit(url)
    scheme, default_port = parts.scheme.lower(), DEFAULT_PORTS[parts.scheme.lower()]
    try:
        host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise FetchError("invalid_url", f"invalid host name in {url!r}: {exc}") from None
    port = parts.port or default_port
    path = quote(parts.path or "/", safe=URL_SAFE) + (f"?{quote(parts.query, safe=URL_SAFE)}" if parts.query else "")
    named = f"[{host}]" if ":" in host else host
    authorization = None
    if parts.username is not None:  # percent-escapes in user and password stand for the characters (RFC 3986)
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("utf-8", "surrogateescape")
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    return _Target(scheme, host, port, path, named if port == default_port else f"{named}:{port}", authorization)


def _get(url: str, options: FetchOptions, deadline: float) -> bytes | str:
    """One GET to a checked address (or through the user's proxy for a checked host): the body, or the absolute
    URL a redirect points to."""
    target = _target(url)
    proxy = proxy_for(target)
    try:
        lookup_limit = time_left(options.connect_timeout, deadline)
    except TimeoutError as exc:
        raise failure(exc, options) from None
    if proxy is None or not options.allow_private:  # the target's check, proxy or not
        addresses = resolve(target.host, target.port, options.allow_private, timeout=lookup_limit)
    if proxy is not None:  # the user's own proxy: trusted, never checked
        addresses = resolve(proxy.host, proxy.port, allow_private=True, timeout=lookup_limit)
    try:
        sock = connect(addresses, options.connect_timeout, deadline)
    except OSError as exc:
        raise failure(exc, options) from None
    try:
        if proxy is not None and target.scheme == "https":
            _tunnel(sock, target, proxy, options, deadline)
        if target.scheme == "https":
            sock.settimeout(time_left(options.connect_timeout, deadline))
            sock = tls_context().wrap_socket(sock, server_hostname=target.host)
        connection = http.client.HTTPConnection(target.host, target.port)  # framing only: the socket is ours
        connection.sock = DeadlineSocket(sock, options.read_timeout, deadline)
        headers = {"Host": target.host_header, "User-Agent": options.user_agent,
                   "Accept": "image/*, */*;q=0.5", "Connection": "close"}
        if target.authorization:
            headers["Authorization"] = target.authorization
        request_target = target.path
        if proxy is not None and target.scheme == "http":  # a proxy takes the absolute URL
            request_target = f"http://{target.host_header}{target.path}"
            if proxy.authorization:
                headers["Proxy-Authorization"] = proxy.authorization
        connection.request("GET", request_target, headers=headers)
        response = connection.getresponse()
        status = response.status
        if status in REDIRECT_STATUSES:
            location = _header_text(response.getheader("Location", "")).strip()
            if not location:
                raise FetchError(f"http_{status}", f"HTTP {status} redirect without a Location")
            # A relative Location keeps the URL's credentials (the same host); an absolute one carries only its own.
            try:
                return urljoin(url, location)
            except ValueError as exc:  # e.g. "http://[::1", an IPv6 host never closed
                raise FetchError("invalid_url", f"HTTP {status} redirect to an invalid URL {location!r}: {exc}") from None
        if not 200 <= status < 300:
            raise FetchError(f"http_{status}", f"HTTP {status} {response.reason}".strip())
        if response.length is not None and response.length > options.max_bytes:
            raise FetchError("too_large", f"Content-Length {response.length} is more than the limit of "
                                          f"{options.max_bytes} bytes")
        return _read_body(response, options.max_bytes)
    except (OSError, http.client.HTTPException) as exc:
        raise failure(exc, options) from None
    finally:
        sock.close()


def _tunnel(sock: socket.socket, target: _Target, proxy: _Proxy, options: FetchOptions, deadline: float) -> None:
    """Ask the proxy on ``sock`` for a tunnel to the target's host and port (CONNECT); FetchError if refused."""
    authority = f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {options.user_agent}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    channel = DeadlineSocket(sock, options.read_timeout, deadline)
    channel.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    # Unbuffered: the proxy sends nothing after its answer until TLS starts, and nothing of that may be read here.
    reader = DeadlineReader(channel)
    status = _line(reader)
    while _line(reader) not in (b"", b"\r\n", b"\n"):
        pass
    parts = status.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or parts[1] != b"200":
        shown = status.strip().decode("latin-1")[:200] or "no answer"
        raise FetchError("connection_error", f"the proxy {proxy.host}:{proxy.port} refused a tunnel to {authority}: "
                                             f"{shown}")


def _line(reader: DeadlineReader, limit: int = 8192) -> bytes:
    """One line of the proxy's answer, read a byte at a time (never past its end); at most ``limit`` bytes."""
    line = bytearray()
    byte = bytearray(1)
    while len(line) < limit and reader.readinto(byte):
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


def _header_text(value: str) -> str:
    """http.client decodes headers as Latin-1; servers that put raw UTF-8 in a Location mean UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The body, up to max_bytes whatever the headers claim (http.client honours the framing:
    Content-Length or chunked; never reads past the declared end)."""
    chunks, size = [], 0
    while chunk := response.read(min(CHUNK, max_bytes + 1 - size)):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"more than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if response.length:  # http.client returns short bodies silently
        raise FetchError("connection_error", f"connection closed after {size} of {size + response.length} bytes")
    return b"".join(chunks)


def failure(exc: BaseException, options: FetchOptions) -> FetchError:
    if isinstance(exc, TimeoutError):
        return FetchError("timeout", f"{exc or 'timed out'} (limits: connect {options.connect_timeout:g} s, "
                                     f"each read {options.read_timeout:g} s, total {options.total_timeout:g} s)")
    if isinstance(exc, ssl.SSLError):  # certificate, name or handshake failure: not transient
        return FetchError("tls_error", str(exc))
    if isinstance(exc, (OSError, http.client.IncompleteRead)):  # refused, reset, unreachable, cut short
        return FetchError("connection_error", str(exc) or type(exc).__name__)
    return FetchError("http_error", f"malformed HTTP response: {type(exc).__name__}: {str(exc).strip()}")
