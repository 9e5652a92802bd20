"""`Result`: one per input, always — the contract between the pipeline and every report writer."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Result:
    input: str  # the path or URL as given / found
    status: str = "ok"  # ok | error
    error_code: str = ""  # not_found, decode_error, decompression_bomb, too_large, http_404, timeout, ... (README)
    error: str = ""  # a human-readable message
    score: float | None = None  # P(AI-generated), 0..1
    label: str = ""  # ai | real (by the threshold); empty on error
    sha256: str = ""  # of the file's bytes
    bytes: int | None = None
    format: str = ""  # JPEG, PNG, WEBP, ...
    width: int | None = None
    height: int | None = None
    frames: int | None = None  # >1 for animations; the first frame is scored
    exif_make: str = ""
    exif_model: str = ""
    exif_software: str = ""
    exif_datetime: str = ""
    crops_max: float | None = None  # with --crops N: the highest tile score
    crops_mean: float | None = None  # ... the mean tile score
    crops_max_tile: str = ""  # ... the highest-scoring tile as "x,y,width,height" in image pixels
    evidence: str = ""  # what the file declares about itself (C2PA, IPTC, generator metadata): ';'-joined codes
    evidence_detail: str = ""  # those declarations' details, as JSON

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def failed(cls, input: str, code: str, message: str, **known) -> "Result":
        return cls(input=input, status="error", error_code=code, error=message, **known)


FIELDS = [f.name for f in fields(Result)]
