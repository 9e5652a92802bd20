"""``Item``: one input as listing found it, the contract between listing (``sources``) and fetching (``fetch``)."""
from __future__ import annotations

from dataclasses import dataclass

from .urls import redact_credentials


@dataclass(frozen=True)
class Item:
    input: str  # the path as found (non-UTF-8 names via os.fsdecode's surrogateescape) or the URL
    kind: str  # "file" | "url"
    error_code: str = ""  # set when listing already knows this input fails
    error: str = ""

    @property
    def redacted(self) -> str:
        """The input as reports and the terminal show it: a URL without its credentials (the fetch uses them)."""
        return redact_credentials(self.input) if self.kind == "url" else self.input
