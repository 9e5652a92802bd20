"""--shard K/N: which of N partitions an input belongs to, chosen by a hash of the input alone, so N jobs over
the same inputs cover them all, none twice, whatever order each job lists them in. Imports nothing heavy: the
CLI parses --shard before torch loads."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Protocol


class Named(Protocol):
    input: str


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N); ValueError saying what is wrong."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes K/N, e.g. 2/8, not {text!r}") from None
    check_shard((k, n))
    return k, n


def check_shard(shard: tuple[int, int]) -> None:
    k, n = shard
    if not 1 <= k <= n:
        raise ValueError(f"--shard {k}/{n}: K must be between 1 and N")


def shard_of(input: str, n: int) -> int:
    digest = hashlib.sha1(input.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def shard_filter(items: Iterable[Named], shard: tuple[int, int]) -> Iterator[Named]:
    """The items of partition K of N (K is 1-based); ValueError at once for a K outside 1..N."""
    check_shard(shard)
    k, n = shard
    return (item for item in items if shard_of(item.input, n) == k)
