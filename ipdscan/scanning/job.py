"""A scan job: inputs -> scored rows -> one report, and the verdict on it. What `ipdscan scan`, torchrun scans and
the benchmarks share; it prints nothing (the caller's hooks show progress and errors).

``ScanJob`` checks a request once (report format and folder, --resume, --retry-errors, torchrun), holds the
report's lock (a report file's: stdout has none), marks the findings its ``Suppressions`` cover, writes every
row through one loop (a batch's rows whole, even on Ctrl-C), keeps the counts (``ScanStats``), merges the torchrun
ranks' parts on rank 0, and returns a ``JobOutcome``: the counts, why the scan stopped early if it did, the
warnings and the exit ``Verdict``.

The counts and the exit verdict are ``verdict``'s; the header the report records, ``reports.header``'s.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from ..extras import MissingExtra, require_torch
from ..interrupt import interrupts_deferred
from ..model.backends import Backend
from ..reports.header import ReportHeader, utc_now
from ..reports.header_file import header_path
from ..reports.json_report import completed_inputs
from ..reports.lock import ReportLock
from ..reports.merge import MergeError, merge_reports
from ..reports.output_format import STDOUT, TABLE, FormatError, check_resumable, format_of, report_target
from ..reports.publish import ReaderGone, file_identity, overwritten_input
from ..reports.suppress import SuppressionError, Suppressions
from ..reports.writers import check_report_path, open_report
from .item import Item
from .options import ScanOptions
from .pipeline import run_plan
from .plan import plan_scan
from .ray_scan import RayOptions, RayUnavailable, import_ray, scan_batches_on_ray
from .result import Result
from .scan_group import ScanGroup
from .sources import selected_items
from .urls import ARGUMENT_URL
from .verdict import ScanStats, Verdict, is_finding, run_warnings, verdict


class JobError(ValueError):
    """A scan that cannot run as asked: one line for the user, exit 2."""


class ReportIsInput(ValueError):
    """A name read from stdin is the report file: the scan stops and the report is not written."""


@dataclass
class JobOutcome:
    stats: ScanStats
    header: ReportHeader
    stopped_by: str | None  # why the scan ended early (Ctrl-C, SIGTERM, a crash); None when it finished
    rows: list[Result]  # without a report file: every row, for the caller to show
    warnings: list[str]  # what a run that exits 0 may still need to say
    verdict: Verdict


def missing_paths(inputs: Iterable[str]) -> list[str]:
    """Command-line inputs naming a path that does not exist: exit 2 at the end, as grep and ls do."""
    return [argument for argument in inputs
            if argument != "-" and not ARGUMENT_URL.match(argument) and not os.path.exists(argument)]


@dataclass
class ScanJob:
    """One scan, checked on creation (JobError); ``with job:`` holds the report's lock; ``job.start(detector)``
    opens the report and ``job.run()`` scans into it.

    Under torchrun (``group``) each process scans its rank's shard into a part beside ``out``, and rank 0 merges
    the parts into ``out`` once every rank is done.
    """

    inputs: list[str]
    options: ScanOptions = field(default_factory=ScanOptions)
    out: Path | None = None  # None: no report file; the outcome's rows hold the results. "-": stdout
    format: str | None = None  # output_format.FORMAT_NAMES; None: by the extension of ``out``
    resume: bool = False  # skip the inputs already in the .jsonl ``out``, append the rest
    retry_errors: bool = False  # with resume: scan the error rows again; each new row replaces its error row
    fail_on: float | None = None
    fail_on_evidence: bool = False
    fail_on_error: bool = False
    group: ScanGroup | None = None
    stdin: TextIO | None = None  # where "-" reads inputs from
    suppressions: Suppressions | None = None  # the ignore rules and baseline findings to mark, not count
    ray: RayOptions | None = None  # scan on Ray Data (ray_scan.py) instead of this machine's worker processes
    settings: dict | None = None  # for the header: the CLI's settings and their sources (config_file.header_settings)

    def __post_init__(self):
        self.inputs = list(self.inputs)
        self.out = report_target(self.out)
        try:
            self.format = format_of(self.format, self.out)
            if self.format != TABLE:
                self.out = self.out or STDOUT  # --format jsonl alone: the report on stdout
                check_report_path(self.out, self.format)
        except (ValueError, FileNotFoundError) as exc:  # FormatError is a ValueError
            raise JobError(str(exc)) from None
        to_file = self.out is not None and self.out != STDOUT
        if to_file and (source := overwritten_input(self.out, self.inputs)) is not None:
            raise JobError(f"--out {self.out} is the input {source}: the report would overwrite it; "
                           "write the report to another file")
        if self.retry_errors and not self.resume:
            raise JobError("--retry-errors rescans the error rows of a report: use it with --resume --out FILE.jsonl")
        self.report_path = self.out
        if self.group:
            if not to_file or self.options.shard:
                raise JobError("a torchrun scan needs --out FILE and shards by rank itself (no --shard)")
            # The job's own options: the caller's stay as given.
            self.options, self.report_path = replace(self.options, shard=self.group.shard), self.group.part(self.out)
        if self.resume:
            try:
                check_resumable(self.out, self.format)
            except FormatError as exc:
                raise JobError(str(exc)) from None
        if self.ray is not None:
            if self.group:
                raise JobError("--ray scans with Ray's workers, not torchrun's: run it as one process")
            if self.options.backend == "onnxruntime":
                raise JobError("--ray scores with the torch backend: leave out --backend onnxruntime")
            try:
                import_ray()  # before the weights load: the pip command, at once
                require_torch("scan --ray", "ray")  # Ray's scoring actors run the torch backend
            except (RayUnavailable, MissingExtra) as exc:
                raise JobError(str(exc)) from None
        self.missing = missing_paths(self.inputs)
        self._lock = ReportLock(self.report_path) if to_file else None

    def __enter__(self) -> ScanJob:
        """Take the report's lock (ReportBusy if another scan holds it) and read what a resumed report holds."""
        if self._lock:
            self._lock.acquire()
            # a name on stdin that is this file becomes an is_the_report row, never read (sources._items_for)
            self.options = replace(self.options, report_identity=file_identity(self.report_path))
        if self.resume:
            done = completed_inputs(self.report_path, self.retry_errors) if self.report_path.exists() else set()
            self.options = replace(self.options, skip=done.__contains__)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock:
            self._lock.release()

    def device(self, requested: str) -> str:
        """The device to load the detector on: under torchrun, ``auto`` is this rank's own GPU."""
        return self.group.device(requested) if self.group else requested

    @property
    def backend(self) -> str:
        """The backend to load the detector with: Ray's scoring actors run torch's."""
        return "torch" if self.ray is not None else self.options.backend

    def items(self) -> Iterator[Item]:
        """The inputs this job covers (after sharding and resume), e.g. to count them for a progress bar."""
        return selected_items(self.inputs, self.options, self.stdin)

    def start(self, detector: Backend) -> ReportHeader:
        """Plan the scan with ``detector`` (``plan.ScanPlan``) and open its report: OSError or ValueError (options
        the detector cannot meet, a resume of another scan's report) if it cannot be. Returns the header the
        report records."""
        self.detector = detector
        self.plan = plan_scan(detector, self.options, self.inputs)
        self.header = ReportHeader.for_scan(self.plan, self.settings)
        from ..reports.sarif import repository_root  # Pillow's MIME table: loaded only by a scan that reports
        sarif_root = repository_root(self.inputs) if self.report_path else None  # SARIF's relative paths start here
        format = "jsonl" if self.group else self.format  # a torchrun rank writes a .jsonl part
        self.writer = open_report(self.report_path, self.header.to_dict(), format=format, resume=self.resume,
                                  retry_errors=self.retry_errors, root=sarif_root) if self.report_path else None
        return self.header

    def run(self, on_result: Callable[[Result], None] | None = None,
            on_batch: Callable[[ScanStats], None] | None = None) -> JobOutcome:
        """Scan every input and write its row (after ``start``); JobError if the torchrun parts cannot be merged.
        Ctrl-C, SIGTERM or a crash mid-scan ends the scan, not the job: the report is closed with the rows
        scanned so far, and the outcome says why it stopped."""
        writer = self.writer
        stats, rows = ScanStats(fail_on=self.fail_on), []
        stopped_by: str | None = None
        publish = True
        try:
            if self.ray is None:
                batches = run_plan(self.plan, self.detector, self.stdin)
            else:
                batches = scan_batches_on_ray(self.plan, self.detector, stdin=self.stdin, ray_options=self.ray)
            for batch in batches:
                with interrupts_deferred():  # a batch's rows are written whole
                    for result in batch:
                        if result.error_code == "is_the_report":
                            raise ReportIsInput(f"--out {self.out} is the input {result.input} named on stdin: the "
                                                "report would overwrite it; write the report to another file")
                        if self.suppressions and is_finding(result, self.fail_on):
                            self.suppressions.apply(result)
                        stats.add(result)
                        if on_result:
                            on_result(result)
                        if writer:
                            writer.write(result)
                        else:
                            rows.append(result)
                    if writer:
                        writer.flush()
                if on_batch:
                    on_batch(stats)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupt.Terminated)
            stopped_by = str(exc) or "interrupted"
        except SuppressionError as exc:  # an ignore file in a folder below, read when a finding there needed it
            stopped_by = f"stopped: {exc}"
        except ReportIsInput as exc:  # left unpublished: the input it would replace survives
            stopped_by, publish = f"stopped: {exc}", False
        except ReaderGone:  # `--out - | head -1`: nobody reads on, so the scan ends here, quietly, on its verdict so far
            pass
        except Exception as exc:  # noqa: BLE001 - keep the rows already scanned, then report the failure
            stopped_by = f"stopped by {type(exc).__name__}: {exc}"
        if writer and publish:
            with interrupts_deferred(), suppress(ReaderGone):  # published whole; a second Ctrl-C is raised once it is
                writer.close({"end_time": utc_now(), "interrupted": stopped_by is not None, **stats.to_dict()})
        if self.group:
            self._merge_ranks(merge=stopped_by is None)
        return JobOutcome(stats, self.header, stopped_by, rows, run_warnings(stats),
                          verdict(stats, missing=self.missing, fail_on=self.fail_on,
                                  fail_on_evidence=self.fail_on_evidence, fail_on_error=self.fail_on_error))

    def _merge_ranks(self, merge: bool) -> None:
        """Wait for every rank; then rank 0 merges the parts into ``out`` (unless this scan stopped early)."""
        self.group.wait_for_all()
        if self.group.rank == 0 and merge:
            try:
                merge_reports(self.group.parts(self.out), self.out, self.header.to_dict(), format=self.format)
            except MergeError as exc:
                raise JobError(f"cannot merge the ranks' parts into {self.out}: {exc}") from None
            for part in self.group.parts(self.out):
                part.unlink()
                header_path(part).unlink(missing_ok=True)
        self.group.finish()
