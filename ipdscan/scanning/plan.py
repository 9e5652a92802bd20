"""``ScanPlan``: a scan worked out once, right after the detector loads, and read by everything after it.

``ScanOptions`` say what was asked; the plan says what that comes to with this detector on this machine: the
backend, the device and precision, where JPEGs are decoded, how many worker processes decode, and the threshold
with where it came from. The report header (``reports.header``), the local executors (``pipeline``) and Ray
(``ray_scan``, ``ray_workers``) read it, so none of them decides any of it again.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..model.backends import TORCH, Backend
from ..model.preprocess import Preprocessing
from ..model.runtime import default_workers
from .options import ScanOptions

THRESHOLD_FROM_WEIGHTS, THRESHOLD_FROM_OPTION = "weights", "--threshold"  # the report header's threshold_source


@dataclass(frozen=True)
class ScanPlan:
    inputs: tuple[str, ...]  # as given
    options: ScanOptions  # the job's: with its shard and resume filter
    model: str  # the weights' name
    variant: str
    weights_sha256: str
    preprocessing: Preprocessing
    backend: str  # "torch" or "onnxruntime"
    device: str  # "cpu", "cuda:0"
    precision: str  # the model's arithmetic: fp32, mixed or bf16
    decodes_on_device: bool  # plain JPEGs left whole by the workers, decoded by the scoring device (nvjpeg)
    workers: int  # decoding processes; 0: in the scoring process
    threshold: float  # the score at or above which a row is labelled ai
    threshold_source: str  # THRESHOLD_FROM_WEIGHTS or THRESHOLD_FROM_OPTION

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def for_workers(self) -> ScanPlan:
        """The plan as it crosses to worker processes and Ray tasks: picklable, without the resume filter, which
        the process listing the items has applied."""
        return replace(self, options=replace(self.options, skip=None))


def plan_scan(detector: Backend, options: ScanOptions, inputs: Iterable[str]) -> ScanPlan:
    """The plan for scanning ``inputs`` with ``detector`` as ``options`` ask (ValueError if they cannot be met)."""
    if detector.backend == TORCH:
        on_device = decodes_on_device(options.decode, detector.device)
    elif options.decode == "device":
        raise ValueError("--decode device needs the torch backend: ONNX Runtime scans decode in the workers")
    else:
        on_device = False
    device_type = "cuda" if str(detector.device).startswith("cuda") else "cpu"
    threshold, source = ((detector.threshold, THRESHOLD_FROM_WEIGHTS) if options.threshold is None
                         else (options.threshold, THRESHOLD_FROM_OPTION))
    return ScanPlan(inputs=tuple(inputs), options=options, model=detector.name, variant=detector.variant,
                    weights_sha256=detector.sha256, preprocessing=detector.preprocessing, backend=detector.backend,
                    device=str(detector.device), precision=detector.precision, decodes_on_device=on_device,
                    workers=default_workers(options.workers, device_type, on_device),
                    threshold=threshold, threshold_source=source)


def decodes_on_device(decode: str, device) -> bool:
    """Whether plain JPEGs go to the torch ``device`` to be decoded (--decode; "auto": on CUDA, where nvjpeg
    works)."""
    if decode == "auto":
        if device.type != "cuda":
            return False
        from .device_decode import device_decodes_jpeg  # torchvision: only for a CUDA scan
        return device_decodes_jpeg(device)
    return decode == "device"
