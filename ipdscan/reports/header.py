"""``ReportHeader``: what a report says about the scan that made it, every writer's header, and what --resume
and merge check."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from .. import __version__
from ..scanning.plan import ScanPlan
from ..scanning.urls import redact_credentials


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ReportHeader:
    """What a report says about the scan that made it: every writer's header, and what --resume and merge check."""

    model: str
    variant: str
    weights_sha256: str
    threshold: float
    threshold_source: str  # "weights" (the checkpoint's calibrated threshold) or "--threshold"
    device: str
    precision: str  # the resolved model arithmetic: fp32, mixed or bf16
    decode: str  # where JPEGs were decoded: "device" (nvjpeg) or "workers" (Pillow)
    inputs: list[str]  # as given, credentials redacted
    backend: str  # what scored: "torch" or "onnxruntime"
    # the CLI's settings that are not defaults and those that choose where to write, what to trust and how much
    # to scan, each {"value", "source"} (config_file.header_settings); empty from the library
    settings: dict = field(default_factory=dict)
    start_time: str = field(default_factory=utc_now)
    tool: str = "ipdscan"
    version: str = __version__

    @classmethod
    def for_scan(cls, plan: ScanPlan, settings: dict | None = None) -> ReportHeader:
        return cls(settings=settings or {}, model=plan.model, variant=plan.variant, weights_sha256=plan.weights_sha256,
                   threshold=plan.threshold, threshold_source=plan.threshold_source, device=plan.device,
                   precision=plan.precision, decode="device" if plan.decodes_on_device else "workers",
                   inputs=[redact_credentials(argument) for argument in plan.inputs], backend=plan.backend)

    def to_dict(self) -> dict:
        """The header as the reports write it; tool and version first, as a reader looks for them."""
        fields_ = asdict(self)
        return {"tool": fields_.pop("tool"), "version": fields_.pop("version"), **fields_}
