"""A real HTTP server on 127.0.0.1 (port 0) for tests, with a route for each way a download goes wrong.

    def test_download(http_server):            # the fixture (tests/conftest.py): a LocalServer() per test
        http_server.add("a.png", IMAGE)
        url = http_server.url("/img/a.png")

    with LocalServer(tls=server_context) as server:   # or one of your own (https: see tls.py)
        ...

Routes (query parameters optional):
    /img/<name>?delay=S        the bytes registered with add(name, ...) (name percent-decoded), after S seconds;
                               404 if unknown
    /404, /500                 that status (every path's requests are counted in .attempts, so retries show)
    /slow?s=S                  waits S seconds (default 5) before answering: past a short read timeout
    /drip?every=S              a body of one byte every S seconds (default 0.05): each read is quick, the whole is not
    /drip-headers?every=S      the header block itself, one byte every S seconds
    /endless                   streams zeros until the client hangs up (no Content-Length: close-delimited)
    /big?declare=N             declares Content-Length N (default 10**12) and streams zeros towards it
    /lying-length?declare=N&actual=M&chunked=1
                               declares Content-Length N but writes M bytes; with chunked=1 the body is
                               chunk-encoded too (which by HTTP/1.1 overrides the Content-Length)
    /redirect?to=URL&code=302  a redirect to URL (relative or absolute; non-ASCII sent as raw UTF-8)
    /redirect-loop             redirects to itself
    /no-location               a 302 without a Location header
    /garbage                   bytes that are not HTTP
    /html                      a text/html page
    /gate?parties=N            answers only once N requests are inside it at the same time (10 s timeout)

The server records every request in .requests (path, Host, User-Agent and Authorization headers) and the most
requests it ever handled at once in .max_active. Sleeps and streams end when the server is closed
or after STREAM_LIMIT_S, so nothing outlives a test by much.
"""
from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

STREAM_LIMIT_S = 20.0
# Bytes to serve and fetch back: a PNG signature and then every byte value (no decoder reads them).
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class LocalServer:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.files: dict[str, tuple[bytes, str]] = {}
        self.attempts: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.barriers: dict[int, threading.Barrier] = {}
        self.scheme = "https" if tls else "http"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        if tls:  # the handshake happens in the handler's thread, on its first read
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[name] = (data, content_type)
        return self.url(f"/img/{name}")

    def close(self) -> None:
        self.stopping.set()
        for barrier in self.barriers.values():
            barrier.abort()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ipdscan-test"

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError):  # the client hung up or refused our certificate: expected in tests
            pass

    def do_GET(self) -> None:
        owner: LocalServer = self.server.owner
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        with owner.lock:
            owner.attempts[parts.path] += 1
            owner.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                   "user_agent": self.headers.get("User-Agent"),
                                   "authorization": self.headers.get("Authorization")})
            owner.active += 1
            owner.max_active = max(owner.max_active, owner.active)
        try:
            self.route(owner, parts.path, query)
        finally:
            with owner.lock:
                owner.active -= 1

    def route(self, owner: LocalServer, path: str, query: dict) -> None:
        if path.startswith("/img/"):
            owner.stopping.wait(float(query.get("delay", 0)))
            name = unquote(path[5:])
            if name not in owner.files:
                return self.reply(404, b"no such image", "text/plain")
            data, content_type = owner.files[name]
            return self.reply(200, data, content_type)
        if path in ("/404", "/500"):
            return self.reply(int(path[1:]), b"error page", "text/plain")
        if path == "/slow":
            owner.stopping.wait(float(query.get("s", 5)))
            return self.reply(200, b"late", "text/plain")
        if path == "/drip":
            self.head(200, "application/octet-stream")
            return self.stream(owner, b"x", float(query.get("every", 0.05)))
        if path == "/drip-headers":
            every, header = float(query.get("every", 0.05)), b"HTTP/1.1 200 OK\r\n" + b"X-Drip: 1\r\n" * 10**4
            end = time.monotonic() + STREAM_LIMIT_S
            for byte in header:
                if owner.stopping.wait(every) or time.monotonic() > end:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        if path == "/endless":
            self.head(200, "application/octet-stream")
            return self.stream(owner, bytes(64 * 1024))
        if path == "/big":
            self.head(200, "application/octet-stream", length=int(query.get("declare", 10**12)))
            return self.stream(owner, bytes(64 * 1024))
        if path == "/lying-length":
            declared, actual = int(query.get("declare", 10)), int(query.get("actual", 10**6))
            body = bytes(range(256)) * (actual // 256) + bytes(actual % 256)
            if query.get("chunked"):
                self.head(200, "application/octet-stream", length=declared, chunked=True)
                for start in range(0, actual, 4096):
                    part = body[start:start + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.head(200, "application/octet-stream", length=declared)
                self.wfile.write(body)
            return
        if path == "/redirect":
            return self.redirect(int(query.get("code", 302)), query.get("to", "/html"))
        if path == "/redirect-loop":
            return self.redirect(302, "/redirect-loop")
        if path == "/no-location":
            return self.reply(302, b"", "text/plain")
        if path == "/garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http at all\r\n\r\n")
            self.close_connection = True
            return
        if path == "/html":
            page = b"<!doctype html><title>not an image</title><p>hello</p>"
            return self.reply(200, page, "text/html; charset=utf-8")
        if path == "/gate":
            parties = int(query.get("parties", 2))
            with owner.lock:
                barrier = owner.barriers.setdefault(parties, threading.Barrier(parties, timeout=10))
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return self.reply(503, b"gate timed out", "text/plain")
            return self.reply(200, b"through the gate", "text/plain")
        self.reply(404, b"no such route", "text/plain")

    def head(self, status: int, content_type: str, length: int | None = None, chunked: bool = False,
             extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def reply(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.head(status, content_type, length=len(body), extra=extra)
        self.wfile.write(body)

    def redirect(self, status: int, location: str) -> None:
        # Raw UTF-8 in the header, as many servers send it (send_header writes Latin-1).
        self.reply(status, b"moved", "text/plain", extra={"Location": location.encode().decode("latin-1")})

    def stream(self, owner: LocalServer, block: bytes, every: float = 0.0) -> None:
        """Write ``block`` again and again until the client hangs up, the server closes, or the limit."""
        end = time.monotonic() + STREAM_LIMIT_S
        while time.monotonic() < end and not owner.stopping.wait(every):
            self.wfile.write(block)
            self.wfile.flush()
