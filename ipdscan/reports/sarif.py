"""SARIF 2.1.0 reports, for code-scanning dashboards and SARIF viewers.

Rules, with stable ids; one SARIF result per finding, none for an input with nothing to report:
    ipdscan/ai-score       the row is labelled ai (its score is at or above the scan's threshold): level "error"
                           from ERROR_SCORE (0.9) up, "warning" below it; a row labelled real has no result
    ipdscan/provenance-ai  the file's own metadata declares AI generation (C2PA, IPTC XMP, generator text chunks;
                           see ipdscan.evidence): level "error", whatever the score
    ipdscan/scan-error     the input could not be scanned (unreadable, not an image, download failed): level "note"

Local files are artifacts relative to the repository's root (``repository_root``: the nearest folder above the
current directory that holds .git, else the current directory), uriBaseId SRCROOT, resolved in originalUriBaseIds:
code scanning maps a location to a file by its path from the repository's root, so the path must not depend on
the folder named or the folder the scan ran in. Files outside that root get absolute file: URIs. A URL (any input with a scheme) gets a stable relative pseudo-path,
urls/<host>/<path>, with the URL itself in the location's properties: code-scanning uploads refuse locations that
are not files. The file's sha256 is each result's partial fingerprint ("sha256/v1") and its artifact's "sha-256"
hash. A suppressed finding (suppress.py) carries a SARIF suppression: code scanning shows it as dismissed.

A SARIF log is one JSON document, yet a scan may be millions of files: results and artifacts wait in spools
beside the report, and close() assembles the document and publishes it as the other writers do
(``publish_spooled``: a temporary name in the same directory, then a rename), so it appears whole or not at all.

Labels and evidence come from the rows as they are: this writer never re-derives a label from a threshold, so
a merged report's SARIF flags what its scans flagged.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from PIL import Image

from .. import HOMEPAGE
from ..scanning.result import Result
from ..scanning.urls import OPAQUE_SCHEMES
from ..text import clean_strings, displayable_text, threshold_text
from .publish import Spool, publish_spooled

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
ERROR_SCORE = 0.9
AI_SCORE, PROVENANCE_AI, SCAN_ERROR = "ipdscan/ai-score", "ipdscan/provenance-ai", "ipdscan/scan-error"
RULES = [
    {"id": AI_SCORE, "name": "AiGeneratedByScore",
     "shortDescription": {"text": "IPD-Net scores the image as likely AI-generated."},
     "fullDescription": {"text": "The IPD-Net model's probability that the image is AI-generated is at or above the "
                                 f"scan's threshold: level error from {ERROR_SCORE}, warning below that."},
     "help": {"text": "A score is a model's judgement of the pixels, not proof: review the image, and its "
                      "provenance where it has any. Raise --threshold to report fewer, surer findings."},
     "defaultConfiguration": {"level": "warning"},
     "properties": {"tags": ["ai-generated-image", "model-score"]}},
    {"id": PROVENANCE_AI, "name": "AiGeneratedByProvenance",
     "shortDescription": {"text": "The file's metadata declares AI generation."},
     "fullDescription": {"text": "The image's own metadata says it was made by a generative model: a C2PA manifest "
                                 "or IPTC XMP digital source type such as trainedAlgorithmicMedia, a generator's "
                                 "parameters text chunk, or a known generator named as the creating software."},
     "help": {"text": "Metadata can be stripped or forged; its presence is a declaration by whoever made the file. "
                      "The result's properties list the evidence codes and details."},
     "defaultConfiguration": {"level": "error"},
     "properties": {"tags": ["ai-generated-image", "provenance"]}},
    {"id": SCAN_ERROR, "name": "ScanError",
     "shortDescription": {"text": "The input could not be scanned."},
     "fullDescription": {"text": "The file or URL could not be read, downloaded or decoded as an image, so it has "
                                 "no score."},
     "help": {"text": "The result's properties hold the error code; the message says what went wrong."},
     "defaultConfiguration": {"level": "note"},
     "properties": {"tags": ["scan-error"]}},
]
RULE_INDEX = {rule["id"]: index for index, rule in enumerate(RULES)}
# RFC 3986's reserved characters and "%" (letters, digits and "-._~" are always kept): a URL keeps its
# structure and escapes, and what a URI cannot hold (spaces, quotes, controls, non-ASCII) is percent-encoded.
URI_CHARACTERS = ":/?#[]@!$&'()*+,;=%"


class SarifWriter:
    def __init__(self, path: Path, header: dict, *, root: Path | None = None, threshold: float | None = None):
        self.path = Path(path)
        self.header = header
        self.root = Path(os.path.abspath(root if root is not None else repository_root()))
        self.threshold = threshold  # only named in messages: the rows' labels say what was flagged
        self._artifacts = Spool(self.path, binary=True)
        self._results = Spool(self.path, binary=True)
        self._artifact_count = self._result_count = 0
        Image.init()  # Image.MIME knows only the formats of Pillow plugins already loaded

    def write(self, result: Result) -> None:
        findings = self._findings(result)
        if not findings:
            return
        location = self._location(result.input)
        artifact = {"location": location, "roles": ["analysisTarget"]}
        if result.bytes is not None:
            artifact["length"] = result.bytes
        if result.sha256:
            artifact["hashes"] = {"sha-256": result.sha256}
        if Image.MIME.get(result.format):
            artifact["mimeType"] = Image.MIME[result.format]
        _append(self._artifacts, self._artifact_count, artifact)
        for finding in findings:
            finding["locations"] = [{"physicalLocation": {
                "artifactLocation": {**location, "index": self._artifact_count}}}]
            _append(self._results, self._result_count, finding)
            self._result_count += 1
        self._artifact_count += 1

    def flush(self) -> None:
        """Push buffered rows to the temporary files (the report itself appears at close)."""
        self._artifacts.flush()
        self._results.flush()

    def close(self, summary: dict) -> None:
        # The run object up to its two streamed arrays: dump it, drop its closing brace, and append them.
        run = {"tool": {"driver": self._driver()}, "invocations": [self._invocation(summary)],
               "originalUriBaseIds": {"SRCROOT": {"uri": _directory_uri(self.root)}},
               "properties": {key: value for key, value in self.header.items() if key not in ("tool", "version")}}
        log = {"$schema": SARIF_SCHEMA, "version": "2.1.0"}
        opening = f'{json.dumps(log)[:-1]}, "runs": [{json.dumps(_displayable(run))[:-1]}, "artifacts": ['
        publish_spooled(self.path, [opening.encode(), self._artifacts, b'], "results": [', self._results,
                                    b"]}]}\n"], binary=True)

    def _findings(self, result: Result) -> list[dict]:
        findings = []
        score = "no score" if result.score is None else f"score {result.score:.3f}"
        if not result.ok:
            findings.append(_finding(SCAN_ERROR, "note", f"Not scanned: {result.error} ({result.error_code}).",
                                     result, error_code=result.error_code))
        if result.label == "ai":
            level = "error" if result.score >= ERROR_SCORE else "warning"
            threshold = f" (threshold {threshold_text(self.threshold)})" if self.threshold is not None else ""
            findings.append(_finding(AI_SCORE, level, f"IPD-Net {score} that the image is AI-generated{threshold}.",
                                     result))
        if result.declares_ai:
            findings.append(_finding(PROVENANCE_AI, "error", f"The file's metadata declares AI generation "
                                                             f"({', '.join(result.evidence)}); IPD-Net {score}.", result))
        return findings

    def _location(self, input: str) -> dict:
        """A URI for the input, percent-encoded from its bytes (a non-UTF-8 file name's own bytes): a URL, or
        any other input with a scheme (one a scan refused, such as ftp: or javascript:), is its own URI."""
        if _has_scheme(input):
            return {"uri": _url_pseudo_path(input), "properties": {"url": quote(os.fsencode(input), safe=URI_CHARACTERS)}}
        path = Path(os.path.abspath(input))
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return {"uri": path.as_uri()}  # as_uri percent-encodes os.fsencode(path): the name's own bytes
        return {"uri": quote(os.fsencode(relative.as_posix())), "uriBaseId": "SRCROOT"}

    def _driver(self) -> dict:
        return {"name": "ipdscan", "version": str(self.header.get("version", "")), "informationUri": HOMEPAGE,
                "rules": RULES}

    def _invocation(self, summary: dict) -> dict:
        invocation = {"executionSuccessful": not summary.get("interrupted", False),
                      "properties": dict(summary)}
        for key, source in (("startTimeUtc", self.header.get("start_time")), ("endTimeUtc", summary.get("end_time"))):
            if source:
                invocation[key] = _utc(source)
        return invocation


def repository_root(inputs: list[str] | tuple[str, ...] = ()) -> Path:
    """The root SARIF locations are relative to: the repository (the nearest folder holding a .git, a folder or a
    worktree's file) the current directory is in; else the one the first local input is in; else the current
    directory."""
    cwd = Path.cwd()
    local = [Path(os.path.abspath(argument)) for argument in inputs
             if argument != "-" and not _has_scheme(argument) and os.path.exists(argument)]
    for start in [cwd, *local[:1]]:
        for folder in [start, *start.parents]:
            if os.path.lexists(folder / ".git"):
                return folder
    return cwd


def _finding(rule: str, level: str, message: str, result: Result, **properties) -> dict:
    if result.score is not None:
        properties.update(score=result.score, label=result.label)
    if result.evidence:
        properties["evidence"] = result.evidence
    if result.evidence_detail:
        properties["evidence_detail"] = result.evidence_detail
    finding = {"ruleId": rule, "ruleIndex": RULE_INDEX[rule], "level": level, "message": {"text": message},
               "properties": properties}
    if result.suppressed:  # "external": decided outside the scanned files, in an ignore file or a baseline
        finding["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f"{result.suppressed}: {result.suppression_reason}"}]
    if result.sha256:
        finding["partialFingerprints"] = {"sha256/v1": result.sha256}
    return finding


def _append(stream: Spool, count: int, item: dict) -> None:
    stream.write((b"," if count else b"") + json.dumps(_displayable(item), ensure_ascii=False).encode("utf-8") + b"\n")


def _has_scheme(input: str) -> bool:
    scheme = urlsplit(input).scheme.lower() if ":" in input else ""
    return bool(scheme) and ("://" in input or scheme in OPAQUE_SCHEMES)


def _url_pseudo_path(url: str) -> str:
    """urls/<host>[_<port>]/<path> for a URL, percent-encoded: the same URL always gets the same path. A query
    becomes a short hash of it (two URLs differing only there stay apart); "." and ".." segments become "_", so
    the path stays under urls/; an input with no host (javascript:...) is urls/<scheme>/<hash of it>."""
    parts = urlsplit(url)
    digest = hashlib.sha256(os.fsencode(url)).hexdigest()
    try:
        host = (parts.hostname or "") + (f"_{parts.port}" if parts.port else "")
    except ValueError:  # a port that is not a number
        host = ""
    if not host:
        return f"urls/{quote(parts.scheme.lower() or 'url')}/{digest[:16]}"
    segments = [segment if segment not in (".", "..") else "_"
                for segment in PurePosixPath(parts.path).parts if segment != "/"] or ["_"]
    if parts.query:
        segments[-1] += f"_{digest[:8]}"
    return quote(os.fsencode("/".join(["urls", host, *segments])))


def _displayable(value):
    """SARIF viewers show messages: every string valid UTF-8 (URIs keep the exact bytes, percent-encoded)."""
    return clean_strings(value, displayable_text)


def _directory_uri(path: Path) -> str:
    uri = path.as_uri()
    return uri if uri.endswith("/") else uri + "/"  # a base URI must end with a slash


def _utc(timestamp: str) -> str:
    """SARIF wants UTC times with a Z: 2024-01-02T03:04:05+00:00 -> 2024-01-02T03:04:05Z."""
    return timestamp[:-6] + "Z" if timestamp.endswith("+00:00") else timestamp
