"""`Result`: one per input, always — the contract between the pipeline and every report writer.

Columns stay structured (evidence a list of codes, its detail a dict) until a writer asks for the row:
``to_dict()`` is the one flat form every report holds, ``row_problem`` the one check that a line read back is such a
row (merge and --resume), and ``Result.from_row`` reads it back.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

from ..evidence import codes_indicate_ai


@dataclass
class Result:
    input: str  # the path or URL as given / found
    status: str = "ok"  # ok | error
    error_code: str = ""  # one of formats.ERROR_CODES
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
    evidence: list[str] = field(default_factory=list)  # what the file declares about itself: codes (evidence.py)
    evidence_detail: dict = field(default_factory=dict)  # those declarations' details, JSON-ready
    suppressed: str = ""  # a finding the team has seen: "ignore-file" or "baseline" (suppress.py)
    suppression_reason: str = ""  # the ignore rule's reason (or FILE:LINE), or the baseline it is in

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def declares_ai(self) -> bool:
        """Whether the file's own metadata declares AI generation (C2PA, IPTC, generator text)."""
        return codes_indicate_ai(self.evidence)

    def to_dict(self) -> dict:
        """The report row, FIELDS in order: evidence as codes joined by ';', its detail as JSON ("" when empty)."""
        row = {name: getattr(self, name) for name in FIELDS}
        row["evidence"] = ";".join(self.evidence)
        row["evidence_detail"] = json.dumps(self.evidence_detail, sort_keys=True, ensure_ascii=False) \
            if self.evidence_detail else ""
        return row

    @classmethod
    def from_row(cls, row: dict) -> Result:
        """The Result a report row (``to_dict``'s form, null for absent) was written from."""
        known = {name: row[name] for name in FIELDS if row.get(name) is not None}
        known["evidence"] = [code for code in known.get("evidence", "").split(";") if code]
        known["evidence_detail"] = json.loads(known["evidence_detail"]) if known.get("evidence_detail") else {}
        return cls(**known)

    @classmethod
    def failed(cls, input: str, code: str, message: str, **known) -> Result:
        return cls(input=input, status="error", error_code=code, error=message, **known)


FIELDS = [f.name for f in fields(Result)]
INT_FIELDS = ("bytes", "width", "height", "frames")
FLOAT_FIELDS = ("score", "crops_max", "crops_mean")
STATUSES = ("ok", "error")
LABELS = ("ai", "real")
# The type every other field must have when present and not null (null means "absent", the field's default).
_TYPES = {f.name: (int,) if f.name in INT_FIELDS else (int, float) if f.name in FLOAT_FIELDS else (str,)
          for f in fields(Result)}


def row_problem(record, threshold: float | None = None, score_error: float = 0.0) -> str | None:
    """What makes ``record`` (a parsed report line) something other than a report row, or None. With the scan's
    ``threshold``, an ok row's label must be the one its score gets (ai at or above it), the score read back being
    at most ``score_error`` from the one labelled (a .csv rounds scores)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("input"), str) or not record["input"]:
        return "no input: it must be a non-empty string"
    if record.get("status") not in STATUSES:
        return f"status {record.get('status')!r} is not one of {', '.join(STATUSES)}"
    for name, types in _TYPES.items():
        value = record.get(name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            return f"{name} {value!r} is not a {' or '.join(t.__name__ for t in types)}"
    if record["status"] == "ok":
        score = record.get("score")
        if score is None or not math.isfinite(score) or not 0 <= score <= 1:
            return f"score {score!r}: an ok row has a score from 0 to 1"
        if record.get("label") not in LABELS:
            return f"label {record.get('label')!r} is not one of {', '.join(LABELS)}"
        if isinstance(threshold, (int, float)) and (score + score_error < threshold if record["label"] == "ai"
                                                    else score - score_error >= threshold):
            return f"label {record['label']!r} for score {score!r} at threshold {threshold!r}"
    elif not record.get("error_code"):
        return "an error row has an error_code"
    if record.get("evidence_detail") and not _json_object(record["evidence_detail"]):
        return "evidence_detail is not a JSON object"
    return None


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
