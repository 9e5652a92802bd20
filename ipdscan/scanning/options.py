"""``ScanOptions``: what a scan is asked to do, from listing to scoring. A job derives its own copy
(``dataclasses.replace``) with the shard and resume filter it adds, never changing the caller's.

Only what was asked: what it comes to on this machine (the backend, where JPEGs are decoded, how many workers,
the threshold) is worked out once the detector has loaded, in the scan's ``plan.ScanPlan``. No torch here:
``ipdscan merge`` reads ScanOptions too.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..choices import BACKEND_CHOICES, DECODE_CHOICES
from .decode import MAX_PIXELS
from .fetch_options import FetchOptions


@dataclass(frozen=True)
class ScanOptions:
    batch_size: int = 32
    workers: int | None = None  # None: chosen from the device and the CPU count
    threshold: float | None = None  # None: the detector's own calibrated threshold
    hidden: bool = False
    null: bool = False  # "-" reads names each ended by a NUL byte (find -print0), not lines
    max_pixels: int = MAX_PIXELS  # larger images are decompression_bomb rows
    fetch: FetchOptions = field(default_factory=FetchOptions)
    fetch_concurrency: int = 8  # per worker; URL lists are latency-bound
    crops: int = 1  # >1: also score about this many tiles across the image (crops_max / crops_mean)
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    skip: Callable[[str], bool] | None = None  # e.g. inputs already in a resumed report
    report_identity: tuple[int, int] | None = None  # (device, inode) of the report file: a name on stdin that is it
    decode: str = "auto"  # where JPEGs are decoded: "workers" (Pillow), "device" (the scoring device), "auto"
    backend: str = "auto"  # what scores: "torch", "onnxruntime", "auto" (backends.choose_backend)
    exclude: tuple[str, ...] = ()  # globs of local files skipped entirely (reports/suppress.Exclusions)

    def __post_init__(self):
        if self.decode not in DECODE_CHOICES:
            raise ValueError(f"unknown decode {self.decode!r}: use {', '.join(DECODE_CHOICES)}")
        if self.backend not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend {self.backend!r}: use {', '.join(BACKEND_CHOICES)}")
        if self.exclude:
            from ..reports.suppress import exclude_problem  # the ignore files' glob rule, checked once here
            for glob in self.exclude:
                if problem := exclude_problem(glob):
                    raise ValueError(f"--exclude {glob}: {problem}")

    @property
    def tiles(self) -> int:
        """The tiles scored beside the centre crop: --crops 1 is the centre crop alone."""
        return self.crops if self.crops > 1 else 0
