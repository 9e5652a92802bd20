"""A scan on Ray Data (``ipdscan scan --ray``): the stages of a local scan spread over a Ray cluster, the rows
written by the driver through ``ScanJob.run`` as a local scan's are (every format, --resume, the report lock).

    driver: inputs listed lazily, cut into batches of ``batch_size`` consecutive items, ``chunk`` inputs at a time
        -> Ray tasks (CPU): fetch + decode + crop a batch, collated as a local scan's worker collates it
        -> Ray actors (one per GPU, or ``actors`` on CPUs): score the batch into finished Results
        -> driver: the batches' Results in input order (``preserve_order``, and checked by index)

Each chunk of inputs is one Ray Data dataset (``ray.data.from_items`` over its batches), so the driver never
holds more than ``chunk`` inputs, however long a URL list is; the next chunk is listed once this one's rows are
written. What crosses processes is a batch's uint8 crops (plus, with JPEGs decoded on the GPU, the files' bytes),
never decoded whole images. A batch is one row of the dataset and one block, so a retried task or a restarted
actor redoes whole batches; Ray keeps only a finished attempt's output, and the driver drops a batch whose
index it has already written and stops the scan (the rows so far kept, resumable) if one is missing.

Retries are set here, not left to Ray Data's defaults (which retry forever: a file that crashes its decoder every
time would hang the scan): ``max_retries`` for the CPU tasks, ``max_restarts`` / ``max_task_retries`` for the
scoring actors.

The per-batch work is a local scan's (``cpu_stage.prepare_batch``, then ``scoring.score_batch``), as the scan's
plan (``plan.ScanPlan``) says, run on the cluster by ``ray_workers``; this module is the driver.
"""
from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..interrupt import signal_handlers_kept
from .plan import ScanPlan
from .ray_workers import Scorer, prepare_rows
from .result import Result
from .worker_pool import batches_of

RAY_MISSING = "--ray needs Ray Data, which is not installed: pip install 'ipdscan[ray]'"
CHUNK = 32_768  # inputs per Ray Data dataset: the most the driver lists ahead of the rows it has written


class RayUnavailable(ValueError):
    """``ray[data]`` cannot be imported: one line for the user, exit 2."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray instance; "auto": join the running cluster; or HOST:PORT
    actors: int | None = None  # scoring actors; None: one per GPU in the cluster (CUDA), else 1
    cpus: int | None = None  # a local instance's CPUs; None: those this process may run on
    chunk: int | None = None  # inputs per dataset (rounded up to whole batches); None: CHUNK
    max_retries: int = 3  # per CPU task (a batch's fetch + decode) whose worker died
    max_restarts: int = 3  # per scoring actor that died
    actor_cpus: float = 1.0  # CPUs each scoring actor reserves from Ray's count
    threads: int | None = None  # torch threads per actor; None: this process's on a local instance, else Ray's

    def __post_init__(self):
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"--ray-actors must be at least 1, not {self.actors}")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"a Ray chunk must hold at least 1 input, not {self.chunk}")


def import_ray():
    """The ``ray`` module with Ray Data, or RayUnavailable (with the pip command)."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra brings pyarrow and pandas with it
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


# --- the driver -------------------------------------------------------------------------------------------------

def connect(ray, ray_options: RayOptions) -> bool:
    """Join or start Ray (unless this process already has); whether this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "logging_level": "ERROR"}
    with signal_handlers_kept():  # a SIGTERM must still close the report with the rows so far, as Ctrl-C does
        if ray_options.address:
            ray.init(address=ray_options.address, **quiet)
        else:
            cpus = ray_options.cpus or len(os.sched_getaffinity(0))
            ray.init(num_cpus=cpus, **quiet)
    return True


def actor_count(ray, ray_options: RayOptions, gpus: bool) -> int:
    if ray_options.actors:
        return ray_options.actors
    return max(1, int(ray.cluster_resources().get("GPU", 0))) if gpus else 1


def scan_batches_on_ray(plan: ScanPlan, detector, *, stdin=None,
                        ray_options: RayOptions = RayOptions()) -> Iterator[list[Result]]:
    """What ``pipeline.run_plan`` yields (a batch's finished Results at a time, in input order, one per input),
    computed on Ray with the torch ``detector`` the plan was made for. Ray is joined or started here and, if
    started here, shut down when the scan ends."""
    import torch

    from .sources import selected_items
    ray = import_ray()
    started = connect(ray, ray_options)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the CLI shows its own
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its per-dataset INFO lines and notices
        gpus, options, portable = plan.on_cuda, plan.options, plan.for_workers()
        # The weights go to the object store once, held by this process for the whole scan (a restarted actor
        # reads them again); the actors check them against the sha256 the report's header records.
        weights = [ray.put(Path(detector.checkpoint.path).read_bytes())]
        # A local instance's actors compute with this process's torch threads, as a local scan does: scores
        # equal to the last bit (a different thread count changes them in the 6th decimal place).
        threads = ray_options.threads or (None if ray_options.address else torch.get_num_threads())
        scorer_args = {"weights": weights, "plan": portable, "threads": threads}
        actors = actor_count(ray, ray_options, gpus)
        per_chunk = max(1, -(-(ray_options.chunk or CHUNK) // options.batch_size))
        batches = enumerate_batches(batches_of(selected_items(plan.inputs, options, stdin), options.batch_size))
        expected = 0
        for chunk in batches_of(batches, per_chunk):
            rows = [{"index": index, "items": pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)}
                    for index, items in chunk]
            end = chunk[-1][0] + len(chunk[-1][1])
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            del rows, chunk
            with warnings.catch_warnings():
                # Ray 2.60 deprecates passing max_retries & co. as ray_remote_args but names no replacement.
                warnings.simplefilter("ignore", DeprecationWarning)
                dataset = dataset.map_batches(prepare_rows, fn_kwargs={"plan": portable}, batch_size=1, num_cpus=1,
                                              max_retries=ray_options.max_retries)
                dataset = dataset.map_batches(
                    Scorer, fn_constructor_kwargs=scorer_args, batch_size=1,
                    compute=ray.data.ActorPoolStrategy(size=actors),
                    num_gpus=1 if gpus else 0, num_cpus=ray_options.actor_cpus,
                    max_restarts=ray_options.max_restarts, max_task_retries=ray_options.max_retries)
            for row in dataset.iter_rows():
                index, results = int(row["index"]), pickle.loads(row["results"])
                if index < expected:
                    continue  # a batch delivered twice: its rows are written already
                if index > expected:
                    raise RuntimeError(f"Ray returned the batch starting at input {index} before input {expected}'s")
                expected += len(results)
                yield results
            if expected != end:
                raise RuntimeError(f"Ray returned inputs up to {expected} of a chunk that ends at {end}")
    finally:
        if started:
            ray.shutdown()


def enumerate_batches(batches: Iterable[list]) -> Iterator[tuple[int, list]]:
    """(index of the batch's first input in the scan, batch)."""
    first = 0
    for batch in batches:
        yield first, batch
        first += len(batch)
