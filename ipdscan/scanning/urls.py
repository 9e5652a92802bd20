"""URLs as inputs: which arguments are URLs, whether one can be fetched as written (``url_problem``), and a URL's
credentials kept out of everything a scan shows or writes (``redact_credentials``)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

URL_SCHEMES = ("http", "https")
# Schemes that are plainly URLs even without "//"; anything else without "//" is just not a URL.
OPAQUE_SCHEMES = frozenset({"javascript", "data", "mailto", "file", "about", "blob", "vbscript", "ftp"})
ARGUMENT_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The user:password@ of a URL, up to the authority's last "@" (an unescaped "@" in a password is common).
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the user:password@ of every URL in it replaced by ***@: https://u:p@host/x -> https://***@host/x."""
    return URL_CREDENTIALS.sub(r"\1***@", text)


def url_problem(url: str) -> tuple[str, str] | None:
    """(error_code, message) if ``url`` cannot be fetched as it is written, else None."""
    if not url.isprintable():  # spaces in a path are quoted when fetched; tabs and controls are damage
        return "invalid_url", f"invalid URL {url!r}: contains control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        return "invalid_url", f"invalid URL {url!r}: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        if scheme and ("://" in url or scheme in OPAQUE_SCHEMES):
            return "unsupported_scheme", f"unsupported URL scheme {scheme!r} (only http and https): {url}"
        return "invalid_url", f"invalid URL {url!r}: no http:// or https:// scheme"
    if not parts.hostname or " " in parts.netloc:
        return "invalid_url", f"invalid URL {url!r}: no valid host"
    if port == 0:
        return "invalid_url", f"invalid URL {url!r}: port 0"
    return None
