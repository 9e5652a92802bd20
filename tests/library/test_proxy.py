"""URL scans through HTTPS_PROXY / HTTP_PROXY / NO_PROXY, against a small proxy on 127.0.0.1 written here: CONNECT
tunnels for https, absolute-form requests for http. The target's addresses are still checked; the proxy's are not."""
import socket
import socketserver
import threading
from dataclasses import replace

import pytest

import ipdscan.net.http_get as http_get
from ipdscan.scanning.fetch import read_item
from ipdscan.scanning.fetch_options import FetchError, FetchOptions
from ipdscan.scanning.item import Item

from http_server import IMAGE, LocalServer

PUBLIC = FetchOptions(retries=0, connect_timeout=5.0, read_timeout=5.0, total_timeout=20.0)
NAMES = {"public.test": "8.8.8.8", "private.test": "10.0.0.1"}


class Proxy:
    """Tunnels CONNECT and forwards absolute-form GETs, always to ``upstream_port`` on 127.0.0.1: it resolves every
    name to the test server, as a real proxy resolves names itself. Records each request's first line and headers."""

    def __init__(self, upstream_port: int, answer: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n"):
        self.requests: list[tuple[str, dict]] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                head, _, rest = head.partition(b"\r\n\r\n")
                first, *header_lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in header_lines)
                proxy.requests.append((first, headers))
                upstream = socket.create_connection(("127.0.0.1", upstream_port))
                if first.startswith("CONNECT "):
                    self.request.sendall(answer)
                    if b" 200 " not in answer:
                        return
                else:  # GET http://host:port/path HTTP/1.1 -> GET /path HTTP/1.1
                    method, target, version = first.split(" ")
                    path = "/" + target.split("://", 1)[1].split("/", 1)[1]
                    upstream.sendall(f"{method} {path} {version}\r\n".encode() + "\r\n".join(header_lines).encode()
                                     + b"\r\n\r\n" + rest)
                pipe(self.request, upstream)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def pipe(client: socket.socket, upstream: socket.socket) -> None:
    def copy(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    other = threading.Thread(target=copy, args=(upstream, client), daemon=True)
    other.start()
    copy(client, upstream)
    other.join(timeout=20)


@pytest.fixture
def names(monkeypatch):
    """public.test and private.test resolve (here) to a public and a private address; nothing connects to them."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host in NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], port))]
        return real(host, port, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return lookups


@pytest.fixture
def proxied(http_server, names, monkeypatch):
    http_server.add("a.png", IMAGE)
    proxy = Proxy(http_server.port)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    yield proxy, http_server
    proxy.close()


def fetch(url, options=PUBLIC):
    return read_item(Item(url, "url"), options)


def test_http_goes_to_the_proxy_in_absolute_form_with_its_credentials(proxied):
    proxy, server = proxied
    assert fetch(f"http://public.test:{server.port}/img/a.png") == IMAGE
    (first, headers), = proxy.requests
    assert first == f"GET http://public.test:{server.port}/img/a.png HTTP/1.1"
    assert headers["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert server.requests[0]["host"] == f"public.test:{server.port}"


def test_the_target_is_still_checked_and_the_proxy_never_asked(proxied, names):
    proxy, server = proxied
    for url in (f"http://private.test:{server.port}/img/a.png", f"http://127.0.0.1:{server.port}/img/a.png",
                "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(FetchError) as failure:
            fetch(url)
        assert failure.value.code == "blocked_address"
    assert proxy.requests == [] and server.requests == []


def test_allow_private_sends_the_name_to_the_proxy_unresolved(proxied, names):
    proxy, server = proxied
    assert fetch(f"http://intranet.test:{server.port}/img/a.png", replace(PUBLIC, allow_private=True)) == IMAGE
    assert "intranet.test" not in names  # the proxy resolves it; nothing here did
    assert proxy.requests[0][0].startswith("GET http://intranet.test:")


def test_no_proxy_hosts_are_reached_directly(proxied, monkeypatch):
    proxy, server = proxied
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert fetch(f"http://127.0.0.1:{server.port}/img/a.png", replace(PUBLIC, allow_private=True)) == IMAGE
    assert proxy.requests == []


def test_a_proxy_that_is_not_http_is_an_error(names, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(FetchError, match="HTTPS_PROXY must be an http://host:port proxy"):
        fetch("https://public.test/a.png")


def test_https_tunnels_through_connect_and_verifies_the_target(tls_contexts, names, monkeypatch):
    server_context, trusting = tls_contexts
    monkeypatch.setattr(http_get, "tls_context", lambda: trusting)
    with LocalServer(tls=server_context) as server:
        server.add("a.png", IMAGE)
        proxy = Proxy(server.port)
        refusing = Proxy(server.port, answer=b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        try:
            monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{proxy.port}")  # no scheme: http:// is meant
            assert fetch(f"https://public.test:{server.port}/img/a.png") == IMAGE
            assert proxy.requests[0][0] == f"CONNECT public.test:{server.port} HTTP/1.1"
            assert server.requests[0]["host"] == f"public.test:{server.port}"  # TLS and Host end to end
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refusing.port}")
            with pytest.raises(FetchError, match="refused a tunnel to public.test.*403 Forbidden") as failure:
                fetch(f"https://public.test:{server.port}/img/a.png")
            assert failure.value.code == "connection_error"
        finally:
            proxy.close()
            refusing.close()
