"""The scan's orchestration: inputs -> the plan (``plan.ScanPlan``, worked out once the detector has loaded) ->
batches of items prepared in worker processes (``cpu_stage.prepare_batch``: fetch, decode, crop) -> scored in
this process (``scoring.score_batch``) -> one finished ``Result`` per input, in input order, batch by batch.

The executor follows the backend, and both run the same two batch functions:

- torch (``torch_loader``): DataLoader workers; on CUDA a reader thread one batch ahead, where plain JPEGs are
  decoded on the GPU (``ScanPlan.decodes_on_device``).
- onnxruntime (``worker_pool``): spawned worker processes without torch, fed by this process's lazy listing.

Prints nothing: the CLI, ``job.ScanJob`` and the Python API all consume ``scan_batches`` or ``run_plan``. Ray
(``ray_scan``) is a third executor of the same two functions.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing

from ..model.backends import TORCH, Backend, load_backend
from .options import ScanOptions
from .plan import ScanPlan, plan_scan
from .result import Result
from .scoring import score_batch
from .worker_pool import pool_batches


def scan_batches(inputs: Iterable[str] | str, detector: Backend | None = None, *, options: ScanOptions | None = None,
                 weights=None, device: str = "auto", stdin=None) -> Iterator[list[Result]]:
    """Scan inputs (paths, directories, URL lists, URLs, '-' for stdin) and yield finished Results batch by batch,
    in input order, with ``detector`` (else the ``weights`` loaded on ``device`` by ``options.backend``).

    Every input yields exactly one Result; failures are Results with status "error".
    """
    options = options or ScanOptions()
    detector = detector or load_backend(weights, device, backend=options.backend)
    plan = plan_scan(detector, options, [inputs] if isinstance(inputs, str) else inputs)
    yield from run_plan(plan, detector, stdin)


def run_plan(plan: ScanPlan, detector: Backend, stdin=None) -> Iterator[list[Result]]:
    """The planned scan's finished Results, batch by batch, in input order; ``stdin``: where "-" reads names."""
    if plan.backend == TORCH:
        from .torch_loader import loader_batches  # torch: only for the torch backend
        batches = loader_batches(plan, stdin)
    else:
        batches = pool_batches(plan, stdin)
    with closing(batches):  # an early stop ends the workers now, not when the generator is collected
        for batch in batches:
            yield score_batch(detector, batch, plan)


def scan(inputs: Iterable[str] | str, detector: Backend | None = None, **kwargs) -> Iterator[Result]:
    """Scan inputs and yield one Result per input, in input order (see ``scan_batches`` for the options)."""
    for batch in scan_batches(inputs, detector, **kwargs):
        yield from batch
