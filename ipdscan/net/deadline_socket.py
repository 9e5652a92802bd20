"""Sockets bounded in time for ``http_get``: a connection to the first checked address that answers, and a socket
whose every send and receive waits at most the read timeout and never past the fetch's total deadline."""
from __future__ import annotations

import functools
import io
import socket
import ssl
import time


def connect(addresses: list[tuple[int, tuple]], timeout: float, deadline: float) -> socket.socket:
    """A TCP connection to the first of the checked addresses that answers."""
    error: OSError = OSError("no address")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(time_left(timeout, deadline))
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def time_left(limit: float, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the total timeout passed")
    return min(limit, left)


class DeadlineSocket:
    """The socket as http.client sees it: each send and receive waits at most the read timeout
    and never past the total deadline, so a server that drips bytes cannot hold a fetch for longer."""

    def __init__(self, sock: socket.socket, read_timeout: float, deadline: float):
        self.sock, self.read_timeout, self.deadline = sock, read_timeout, deadline

    def arm(self) -> None:
        self.sock.settimeout(time_left(self.read_timeout, self.deadline))

    def sendall(self, data: bytes) -> None:
        self.arm()
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self))

    def close(self) -> None:
        pass  # http.client closes "the connection" once headers say Connection: close; _get closes the socket


class DeadlineReader(io.RawIOBase):
    def __init__(self, owner: DeadlineSocket):
        self.owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.owner.arm()
        return self.owner.sock.recv_into(buffer)


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()
