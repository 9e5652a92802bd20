import base64
import itertools
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import replace
from urllib.parse import quote

import pytest

import ipdscan.net.http_get as http_get
from ipdscan.net.addresses import blocked_reason, resolve
from ipdscan.scanning.fetch import fetch_many, read_item
from ipdscan.scanning.fetch_options import FetchError, FetchOptions
from ipdscan.scanning.item import Item

from filesystem import finishes, posix, run_unprivileged, unblock_fifo
from http_server import IMAGE, LocalServer

# Short timeouts keep the failure cases fast; retries only where a test asks for them.
LOCAL = FetchOptions(allow_private=True, retries=0, retry_backoff=0.01, connect_timeout=5.0, read_timeout=5.0,
                     total_timeout=20.0)
PUBLIC = replace(LOCAL, allow_private=False)


def url(item_url: str) -> Item:
    return Item(item_url, "url")


def code_of(item: Item, options: FetchOptions = LOCAL) -> str:
    with pytest.raises(FetchError) as failure:
        read_item(item, options)
    return failure.value.code


# --- http, on 127.0.0.1 with private addresses allowed ---------------------------------------------------------

def test_ok_returns_the_bytes_and_sends_identifying_headers(http_server):
    assert read_item(url(http_server.add("a.png", IMAGE)), LOCAL) == IMAGE
    [request] = http_server.requests
    assert request["host"] == f"127.0.0.1:{http_server.port}"
    assert request["user_agent"].startswith("ipdscan")


def test_spaces_and_non_ascii_in_paths_are_quoted(http_server):
    http_server.add("a b.png", IMAGE)
    http_server.add("画像.png", IMAGE[::-1])
    assert read_item(url(http_server.url("/img/a b.png")), LOCAL) == IMAGE
    assert read_item(url(http_server.url("/img/画像.png")), LOCAL) == IMAGE[::-1]
    assert read_item(url(http_server.url(f"/img/{quote('画像.png')}")), LOCAL) == IMAGE[::-1]  # not quoted twice
    to = quote("/img/画像.png", safe="")
    assert read_item(url(http_server.url(f"/redirect?to={to}")), LOCAL) == IMAGE[::-1]  # a raw UTF-8 Location


def test_html_bytes_come_back_for_the_decoder_to_judge(http_server):
    assert read_item(url(http_server.url("/html")), LOCAL).startswith(b"<!doctype html>")


def test_http_errors_become_codes(http_server):
    assert code_of(url(http_server.url("/404"))) == "http_404"
    assert code_of(url(http_server.url("/img/missing.png"))) == "http_404"
    assert code_of(url(http_server.url("/no-location"))) == "http_302"
    assert code_of(url(http_server.url("/garbage"))) == "http_error"


def test_5xx_is_retried_and_4xx_is_not(http_server):
    assert code_of(url(http_server.url("/500")), replace(LOCAL, retries=2)) == "http_500"
    assert http_server.attempts["/500"] == 3
    assert code_of(url(http_server.url("/404")), replace(LOCAL, retries=2)) == "http_404"
    assert http_server.attempts["/404"] == 1


def test_read_timeout_is_retried_then_reported(http_server):
    options = replace(LOCAL, read_timeout=0.3, retries=1)
    assert code_of(url(http_server.url("/slow?s=10")), options) == "timeout"
    assert http_server.attempts["/slow"] == 2


def test_total_deadline_stops_a_slow_drip(http_server):
    # Every byte arrives well within the read timeout; only the total deadline can end these.
    options = replace(LOCAL, read_timeout=5.0, total_timeout=0.5)
    assert code_of(url(http_server.url("/drip?every=0.02")), options) == "timeout"
    assert code_of(url(http_server.url("/drip-headers?every=0.02")), options) == "timeout"


def test_size_cap_holds_whatever_the_headers_say(http_server):
    options = replace(LOCAL, max_bytes=100_000)
    assert code_of(url(http_server.url("/endless")), options) == "too_large"
    with pytest.raises(FetchError) as declared:
        read_item(url(http_server.url("/big?declare=100001")), options)
    assert declared.value.code == "too_large" and "Content-Length" in declared.value.message  # failed early
    # Content-Length claims little, but the body is chunked (which overrides it) and endless: the cap stops it.
    assert code_of(url(http_server.url("/lying-length?declare=10&actual=1000000&chunked=1")), options) == "too_large"


def test_content_length_framing_is_honoured(http_server):
    # Claims 10 bytes, sends a million: the response is the 10 bytes, and nothing past them is read.
    data = read_item(url(http_server.url("/lying-length?declare=10&actual=1000000")), LOCAL)
    assert data == bytes(range(10))
    # Claims 100, sends 10, hangs up: a cut-off download, not a short image.
    assert code_of(url(http_server.url("/lying-length?declare=100&actual=10"))) == "connection_error"


def test_redirects_are_followed_up_to_the_limit(http_server):
    http_server.add("a.png", IMAGE)
    for status in (301, 302, 303, 307, 308):
        assert read_item(url(http_server.url(f"/redirect?code={status}&to=/img/a.png")), LOCAL) == IMAGE
    absolute = http_server.url(f"/redirect?to={quote(http_server.url('/img/a.png'), safe='')}")
    assert read_item(url(absolute), LOCAL) == IMAGE
    two_hops = http_server.url("/redirect?to=" + quote("/redirect?to=/img/a.png", safe=""))
    assert read_item(url(two_hops), replace(LOCAL, max_redirects=2)) == IMAGE
    assert code_of(url(two_hops), replace(LOCAL, max_redirects=1)) == "too_many_redirects"


def test_redirect_loop_stops(http_server):
    assert code_of(url(http_server.url("/redirect-loop")), replace(LOCAL, max_redirects=4)) == "too_many_redirects"
    assert http_server.attempts["/redirect-loop"] == 5  # the first request and 4 redirects


def test_redirect_to_another_scheme_is_refused(http_server):
    to = quote("ftp://127.0.0.1/a.png", safe="")
    assert code_of(url(http_server.url(f"/redirect?to={to}"))) == "unsupported_scheme"


def test_redirect_to_a_url_that_cannot_be_parsed_is_invalid_url(http_server):
    to = quote("http://[::1", safe="")  # issue 21: read_error "ValueError"
    assert code_of(url(http_server.url(f"/redirect?to={to}"))) == "invalid_url"


def test_connection_refused_and_unresolvable_hosts(monkeypatch):
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert code_of(url(f"http://127.0.0.1:{port}/a.png"), replace(LOCAL, retries=1)) == "connection_error"

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert code_of(url("http://no-such-host.test/a.png")) == "connection_error"


def test_a_dns_server_that_never_answers_is_a_timeout_within_the_connect_limit(monkeypatch):
    release = threading.Event()

    def silent_dns(host, *args, **kwargs):  # a resolver stuck on a dead server: getaddrinfo has no timeout
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", silent_dns)
    with pytest.raises(FetchError) as caught:  # without a limit: connection_error, after the resolver's 30 s
        read_item(url("http://slow-dns.test/a.png"), FetchOptions(connect_timeout=0.3, retries=0))
    assert caught.value.code == "timeout" and "slow-dns.test" in caught.value.message
    release.set()  # let the abandoned lookup thread finish


# --- address checks without allow_private ------------------------------------------------------------------------

BLOCKED_HOSTS = ["127.0.0.1", "127.1", "0x7f000001", "2130706433", "017700000001", "localhost",
                 "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "169.254.169.254", "100.64.0.1",
                 "10.0.0.1", "192.168.1.1", "172.16.0.1", "0.0.0.0", "[::]", "[::1]", "[fe80::1]", "224.0.0.1",
                 "255.255.255.255", "240.0.0.1", "[::ffff:10.0.0.1]", "[fc00::1]", "[ff02::1]", "[2002:7f00:1::1]",
                 "[2002:a9fe:a9fe::1]", "[64:ff9b::a9fe:a9fe]", "[2001:0:4136:e378:8000:63bf:f5ff:fffe]"]


@pytest.fixture
def no_connections(monkeypatch):
    def refuse(addresses, *args):
        pytest.fail(f"connected to {addresses}: the address check must refuse first")

    monkeypatch.setattr(http_get, "connect", refuse)


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_private_and_special_addresses_are_blocked(host, no_connections):
    assert code_of(url(f"http://{host}:8080/a.png"), PUBLIC) == "blocked_address"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111"])
def test_public_addresses_pass(address):
    assert blocked_reason(address) is None
    [(_, sockaddr)] = resolve(address, 443)  # numeric: no DNS query leaves the machine
    assert sockaddr[:2] == (address, 443)


def test_blocked_reasons_name_the_problem():
    assert blocked_reason("127.0.0.1") == "loopback"
    assert blocked_reason("169.254.169.254") == "link-local"
    assert blocked_reason("100.64.0.1") == "not globally routable"
    assert "embeds 127.0.0.1" in blocked_reason("2002:7f00:1::1")
    assert "embeds 10.0.0.1" in blocked_reason("64:ff9b::a00:1")


def test_blocked_local_server_is_never_contacted(http_server):
    assert code_of(url(http_server.add("a.png", IMAGE)), PUBLIC) == "blocked_address"
    assert http_server.requests == []


class FakeInternet:
    """Names that resolve to public addresses, with connections to those addresses routed to the
    local server: what a public server looks like to fetch, with no traffic leaving 127.0.0.1."""

    def __init__(self, monkeypatch, server: LocalServer):
        self.server, self.names, self.lookups, self.connections = server, {}, Counter(), []
        real_getaddrinfo, real_connect = socket.getaddrinfo, http_get.connect

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in self.names:
                return real_getaddrinfo(host, port, *args, **kwargs)
            self.lookups[host] += 1
            answer = self.names[host]
            addresses = answer(self.lookups[host]) if callable(answer) else answer
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                    else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

        def connect(addresses, timeout, deadline):
            self.connections.append(addresses)
            return real_connect([(socket.AF_INET, ("127.0.0.1", server.port))], timeout, deadline)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(http_get, "connect", connect)

    def url(self, host: str, path: str) -> str:
        return f"{self.server.scheme}://{host}:{self.server.port}{path}"


@pytest.fixture
def internet(monkeypatch, http_server):
    http_server.add("a.png", IMAGE)
    return FakeInternet(monkeypatch, http_server)


def test_connects_to_the_checked_address_with_the_original_host(internet):
    internet.names["public.test"] = ["8.8.8.8"]
    assert read_item(url(internet.url("public.test", "/img/a.png")), PUBLIC) == IMAGE
    assert internet.connections == [[(socket.AF_INET, ("8.8.8.8", internet.server.port))]]
    assert internet.server.requests[0]["host"] == f"public.test:{internet.server.port}"


def test_international_host_names_go_out_as_idna(internet):
    internet.names["xn--r8jz45g.jp"] = ["8.8.8.8"]
    assert read_item(url(internet.url("例え.jp", "/img/a.png")), PUBLIC) == IMAGE
    assert internet.server.requests[0]["host"] == f"xn--r8jz45g.jp:{internet.server.port}"


def test_dns_rebinding_gets_no_second_lookup(internet):
    # A name that answers public first and loopback afterwards: the checked answer is the one used.
    internet.names["rebind.test"] = lambda lookup: ["8.8.8.8"] if lookup == 1 else ["127.0.0.1"]
    assert read_item(url(internet.url("rebind.test", "/img/a.png")), PUBLIC) == IMAGE
    assert internet.lookups["rebind.test"] == 1
    assert [address for [(_, (address, _))] in internet.connections] == ["8.8.8.8"]


def test_every_address_of_a_name_is_checked(internet):
    internet.names["mixed.test"] = ["8.8.8.8", "10.0.0.1"]
    assert code_of(url(internet.url("mixed.test", "/img/a.png")), PUBLIC) == "blocked_address"
    assert internet.connections == []


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/img/a.png", "http://localhost:{port}/img/a.png",
                                    "http://0x7f000001:{port}/img/a.png", "http://[::ffff:127.0.0.1]:{port}/",
                                    "http://169.254.169.254/latest/meta-data/", "http://private.test:{port}/"])
def test_each_redirect_hop_is_checked_again(internet, target):
    internet.names.update({"public.test": ["8.8.8.8"], "private.test": ["192.168.0.10"]})
    to = quote(target.format(port=internet.server.port), safe="")
    with pytest.raises(FetchError) as failure:
        read_item(url(internet.url("public.test", f"/redirect?to={to}")), PUBLIC)
    assert failure.value.code == "blocked_address" and "after a redirect" in failure.value.message
    assert len(internet.connections) == 1  # the first hop only
    assert internet.server.attempts["/img/a.png"] == 0


def test_redirect_to_another_public_host_is_followed(internet):
    internet.names.update({"public.test": ["8.8.8.8"], "cdn.test": ["1.1.1.1"]})
    to = quote(internet.url("cdn.test", "/img/a.png"), safe="")
    assert read_item(url(internet.url("public.test", f"/redirect?to={to}")), PUBLIC) == IMAGE
    assert [c[0][1][0] for c in internet.connections] == ["8.8.8.8", "1.1.1.1"]
    assert internet.server.requests[1]["host"] == f"cdn.test:{internet.server.port}"


# --- https ---------------------------------------------------------------------------------------------------

@pytest.fixture
def tls_internet(monkeypatch, tls_contexts):
    server_context, trusting = tls_contexts
    with LocalServer(tls=server_context) as server:
        server.add("a.png", IMAGE)
        internet = FakeInternet(monkeypatch, server)
        internet.names.update({"public.test": ["8.8.8.8"], "other.test": ["8.8.4.4"]})
        internet.trust = lambda: monkeypatch.setattr(http_get, "tls_context", lambda: trusting)
        yield internet


def test_https_verifies_the_certificate_against_the_host_name(tls_internet):
    tls_internet.trust()
    # Connected to 127.0.0.1, yet valid: SNI and verification used the name, not the address.
    assert read_item(url(tls_internet.url("public.test", "/img/a.png")), PUBLIC) == IMAGE
    assert tls_internet.server.requests[0]["host"] == f"public.test:{tls_internet.server.port}"
    assert code_of(url(tls_internet.url("other.test", "/img/a.png")), PUBLIC) == "tls_error"  # wrong name


def test_https_refuses_an_untrusted_certificate(tls_internet):
    assert code_of(url(tls_internet.url("public.test", "/img/a.png")), PUBLIC) == "tls_error"
    assert tls_internet.server.requests == []


# --- fetch_many ----------------------------------------------------------------------------------------------

def test_fetch_many_keeps_input_order(http_server, tmp_path):
    http_server.add("a.png", b"A")
    http_server.add("b.png", b"B")
    local = tmp_path / "c.png"
    local.write_bytes(b"C")
    items = [url(http_server.url("/img/a.png?delay=0.3")), url(http_server.url("/img/b.png")),
             Item(str(local), "file"), Item("not a url", "url", "invalid_url", "no scheme"),
             url(http_server.url("/404")), url(http_server.url("/img/a.png"))]
    results = list(fetch_many(items, LOCAL, concurrency=4))
    assert [item for item, _ in results] == items
    values = [data if isinstance(data, bytes) else data.code for _, data in results]
    assert values == [b"A", b"B", b"C", "invalid_url", "http_404", b"A"]


def test_fetch_many_limits_requests_per_host(http_server):
    # /gate answers only when 2 requests are inside at once: so 2 at a time must happen, and 3 never may.
    items = [url(http_server.url(f"/gate?parties=2&n={n}")) for n in range(8)]
    results = list(fetch_many(items, LOCAL, concurrency=8, per_host=2))
    assert [data for _, data in results] == [b"through the gate"] * 8
    assert http_server.max_active == 2


def test_fetch_many_limits_each_host_separately(http_server):
    # One slot per host, two hosts (the same server by two names): two requests still run together.
    hosts = itertools.cycle(["127.0.0.1", "localhost"])
    items = [url(http_server.url(f"/gate?parties=2&n={n}", host=next(hosts))) for n in range(6)]
    results = list(fetch_many(items, LOCAL, concurrency=4, per_host=1))
    assert [data for _, data in results] == [b"through the gate"] * 6
    assert http_server.max_active == 2


def test_fetch_many_does_not_run_ahead_of_its_consumer(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(IMAGE)
    taken = itertools.count()

    def many_items():  # enough that reading them all ahead would show (and still end)
        for _ in range(10_000):
            next(taken)
            yield Item(str(image), "file")

    results = fetch_many(many_items(), LOCAL, concurrency=3)
    first = list(itertools.islice(results, 10))
    results.close()
    assert [data for _, data in first] == [IMAGE] * 10
    assert next(taken) <= 10 + 2 * 3  # at most 2 x concurrency items ahead


# --- local files -------------------------------------------------------------------------------------------

def test_file_reads(tmp_path):
    image, empty = tmp_path / "a.png", tmp_path / "empty.png"
    image.write_bytes(IMAGE)
    empty.write_bytes(b"")
    assert read_item(Item(str(image), "file")) == IMAGE
    assert read_item(Item(str(empty), "file")) == b""
    assert code_of(Item(str(tmp_path / "missing.png"), "file")) == "not_found"
    assert code_of(Item(str(tmp_path), "file")) == "not_a_file"
    assert code_of(Item(str(image), "file"), replace(LOCAL, max_bytes=len(IMAGE) - 1)) == "too_large"
    assert read_item(Item(str(image), "file"), replace(LOCAL, max_bytes=len(IMAGE))) == IMAGE


def test_items_that_already_failed_are_not_read(tmp_path):
    with pytest.raises(FetchError) as failure:
        read_item(Item(str(tmp_path), "file", "symlink_loop", "loops"))
    assert (failure.value.code, failure.value.message) == ("symlink_loop", "loops")


@posix
def test_fifo_is_never_opened(tmp_path, opened_paths):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    try:
        failure = finishes(lambda: pytest.raises(FetchError, read_item, Item(str(fifo), "file")))
        opened = list(opened_paths)
    finally:
        unblock_fifo(fifo)
    assert failure.value.code == "not_a_file"
    assert str(fifo) not in opened


def read_code(path):
    try:
        read_item(Item(path, "file"))
        return "ok"
    except FetchError as exc:
        return exc.code


@posix
def test_unreadable_file_is_permission_denied(shared_tmp):
    path = os.path.join(shared_tmp, "secret.png")
    with open(path, "wb") as file:
        file.write(IMAGE)
    os.chmod(path, 0o000)
    assert run_unprivileged(read_code, path) == "permission_denied"


def test_one_deadline_covers_every_attempt_of_a_url(http_server):
    # a server that drips: each attempt would run to its own total_timeout, and retries multiplied it
    options = replace(LOCAL, retries=3, retry_backoff=0.01, total_timeout=0.6)
    started = time.monotonic()
    assert code_of(url(http_server.url("/drip?every=0.02")), options) == "timeout"
    assert time.monotonic() - started < 1.0
    # a server slower than the read timeout: retried while the deadline allows, then given up
    options = replace(LOCAL, retries=20, retry_backoff=0.01, read_timeout=0.2, total_timeout=0.7)
    started = time.monotonic()
    assert code_of(url(http_server.url("/slow?s=5")), options) == "timeout"
    assert time.monotonic() - started < 1.1 and http_server.attempts["/slow"] >= 2


def test_credentials_in_a_url_go_out_as_basic_auth_to_that_host_only(http_server):
    http_server.add("a.png", IMAGE)
    with_credentials = http_server.url("/img/a.png").replace("http://", "http://us%40er:p%3Ass@")
    assert read_item(url(with_credentials), LOCAL) == IMAGE
    assert http_server.requests[-1]["authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    elsewhere = quote(http_server.url("/img/a.png", host="localhost"), safe="")
    redirected = http_server.url(f"/redirect?to={elsewhere}").replace("http://", "http://user:secret@")
    assert read_item(url(redirected), LOCAL) == IMAGE
    assert http_server.requests[-2]["authorization"] is not None  # the host the credentials are for
    assert http_server.requests[-1]["authorization"] is None  # another host: never sent on


def test_credentials_never_appear_in_fetch_errors(http_server):
    with pytest.raises(FetchError) as failure:
        read_item(url(http_server.url("/redirect?to=/404").replace("http://", "http://user:secret@")), LOCAL)
    assert "secret" not in failure.value.message
