"""What a fetch may do (``FetchOptions``: size cap, timeouts, retries, redirects, private addresses) and how it
fails (``FetchError``, with the row's error code): shared by local reads (``fetch``) and HTTP (``http_get``)."""
from __future__ import annotations

from dataclasses import dataclass

from .. import __version__

USER_AGENT = f"ipdscan/{__version__}"


@dataclass(frozen=True)
class FetchOptions:
    max_bytes: int = 50 * 2**20
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # for each send or receive
    total_timeout: float = 120.0  # for one attempt, redirects included
    retries: int = 1  # on timeouts, connection errors and 5xx only
    retry_backoff: float = 0.5  # seconds before retry n (0-based) = retry_backoff * 2**n, at most MAX_BACKOFF
    max_redirects: int = 5
    allow_private: bool = False  # --allow-private-urls
    user_agent: str = USER_AGENT


class FetchError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)
        self.code, self.message = code, message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
