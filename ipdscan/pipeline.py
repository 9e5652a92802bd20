"""The scan's orchestration: inputs -> the CPU stage in DataLoader workers (``cpu_stage``: fetch, decode, crop) ->
the device stage (``device_stage``: GPU JPEG decode, crops onto the device) -> scoring (``score.score_batch``) ->
one finished ``Result`` per input, in input order, batch by batch.

With ``ScanOptions.decode`` resolved to "device" (the default on CUDA), workers only parse plain JPEGs' headers,
and the scoring process decodes and crops each batch's JPEGs on the GPU in a reader thread that runs one batch
ahead of the scoring. Prints nothing: the CLI, ``job.ScanJob`` and the Python API all consume ``scan_batches``.

Another way to run a scan (another executor than the DataLoader) is built from the same three pieces:
``cpu_stage.prepare`` (an Item and its fetched bytes or FetchError -> a ``Prepared`` sample),
``cpu_stage.collate_prepared`` (samples -> a ``ScanBatch``) and ``score.score_batch`` (a batch -> its finished
Results, in order), labelling by ``score.resolve_threshold``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch.utils.data import DataLoader

from .cpu_stage import ScanDataset, collate_prepared
from .device_stage import decode_on_device, in_background
from .options import ScanOptions
from .result import Result
from .score import Detector, load_detector, resolve_threshold, score_batch
from .stdin_spool import StdinSpool


def scan_batches(inputs: Iterable[str] | str, detector: Detector | None = None, *, options: ScanOptions | None = None,
                 weights=None, device: str = "auto", stdin=None) -> Iterator[list[Result]]:
    """Scan inputs (paths, directories, URL lists, URLs, '-' for stdin) and yield finished Results batch by batch,
    in input order.

    Every input yields exactly one Result; failures are Results with status "error".
    """
    options = options or ScanOptions()
    detector = detector or load_detector(weights, device)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    target, preprocessing = detector.device, detector.preprocessing
    on_device = options.decodes_on_device(target)
    workers = options.resolved_workers(target, on_device)
    # Worker processes cannot read this process's stdin: they read a copy that this process makes as lines arrive.
    spool = StdinSpool(stdin, options.null) if "-" in inputs and workers > 0 else None
    dataset = ScanDataset(inputs, options, preprocessing, on_device, spool.lines if spool else stdin)
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=workers, collate_fn=collate_prepared,
                        pin_memory=target.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if workers else None)

    def decoded_on_device() -> Iterator:
        for batch in loader:
            yield decode_on_device(batch, target, preprocessing, options.max_pixels, options.tiles)

    # Iterated lazily: on CUDA the reader thread starts the workers and does the device decoding.
    batches = decoded_on_device() if on_device else loader
    threshold = resolve_threshold(detector, options.threshold)
    try:
        for batch in in_background(batches) if target.type == "cuda" else batches:
            yield score_batch(detector, batch, threshold)
    finally:
        if spool:
            spool.close()


def scan(inputs: Iterable[str] | str, detector: Detector | None = None, **kwargs) -> Iterator[Result]:
    """Scan inputs and yield one Result per input, in input order (see ``scan_batches`` for the options)."""
    for batch in scan_batches(inputs, detector, **kwargs):
        yield from batch
