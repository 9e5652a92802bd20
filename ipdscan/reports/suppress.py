"""Findings a team has already looked at, kept out of the verdict: an ignore file and a baseline report.

An ignore file (``--ignore-file``, by default ``.ipdscanignore`` in a scanned folder or the current directory) has
one rule a line, each with an optional ``# reason`` after a space:

    sha256:<64 hex digits>     the file with these bytes, wherever it is   # the logo, reviewed 2024-05
    logos/*.png                a glob on the path, relative to the ignore file's folder ("*" crosses folders);
                               without a "/", on the file name alone; URLs match their whole text
    # a comment line; blank lines are skipped

A baseline (``--baseline OLD_REPORT``: .jsonl, .json or .sarif) names the files an earlier scan already reported,
by sha256: the rows of a .jsonl/.json report that were scored, the findings of a .sarif log.

A finding (``verdict.is_finding``: a row labelled ai, over --fail-on, or declaring AI generation) that a rule or the
baseline covers stays in the report, marked (``suppressed`` = "ignore-file" or "baseline", ``suppression_reason``),
and does not count towards --fail-on or --fail-on-evidence. A row that could not be scanned is still an error for
--fail-on-error: suppression silences findings, not failures.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from ..scanning.result import Result, row_problem
from ..scanning.urls import ARGUMENT_URL
from .output_format import FormatError, suffix_format

IGNORE_FILE = ".ipdscanignore"
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
REASON = re.compile(r"\s+#\s?")  # " # why": a "#" inside a name is part of the glob
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
IGNORE_FILE_SUPPRESSION, BASELINE_SUPPRESSION = "ignore-file", "baseline"


class SuppressionError(ValueError):
    """An ignore file or baseline that cannot be used: one line naming the file (and line), exit 2."""


@dataclass(frozen=True)
class Rule:
    sha256: str  # lower-case hex, or "" for a glob rule
    glob: str
    folder: Path  # the ignore file's folder: what a glob with a "/" is relative to
    reason: str  # the comment, or where the rule is (FILE:LINE) when it has none

    def matches(self, result: Result) -> bool:
        if self.sha256:
            return result.sha256.lower() == self.sha256
        if ARGUMENT_URL.match(result.input):
            return fnmatchcase(result.input, self.glob)
        if "/" not in self.glob:
            return fnmatchcase(PurePath(result.input).name, self.glob)
        pattern = self.glob.lstrip("/")
        try:
            relative = Path(os.path.abspath(result.input)).relative_to(self.folder).as_posix()
        except ValueError:
            relative = None
        return (relative is not None and fnmatchcase(relative, pattern)) or \
            fnmatchcase(PurePath(result.input).as_posix(), pattern)


def read_ignore_file(path: Path) -> list[Rule]:
    """The rules of an ignore file; SuppressionError naming FILE:LINE for a line that is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise SuppressionError(f"cannot read the ignore file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    folder = Path(os.path.abspath(path)).parent
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        where, stripped = f"{path}:{number}", line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pattern, reason = (REASON.split(stripped, maxsplit=1) + [""])[:2]
        if problem := _pattern_problem(pattern):
            raise SuppressionError(f"{where}: {problem}: {stripped!r}")
        sha256 = pattern[len("sha256:"):].lower() if pattern.startswith("sha256:") else ""
        rules.append(Rule(sha256, "" if sha256 else pattern, folder, reason.strip() or where))
    return rules


def _pattern_problem(pattern: str) -> str | None:
    if CONTROL.search(pattern):
        return "a control character in the rule"
    if pattern.lower().startswith("sha256:"):
        return None if pattern.startswith("sha256:") and SHA256.fullmatch(pattern[7:]) else \
            "expected sha256:<64 hex digits>"
    if pattern.count("[") != pattern.count("]"):
        return "an unclosed [ in the glob"
    return None


def ignore_files(inputs: list[str], explicit: Path | None) -> list[Path]:
    """The ignore files a scan reads: ``explicit`` (--ignore-file) alone, else each scanned folder's
    .ipdscanignore and the current directory's, those that exist, each once."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise SuppressionError(f"no such ignore file: {explicit}")
        return [Path(explicit)]
    found: dict[str, Path] = {}
    for folder in [*(argument for argument in inputs if os.path.isdir(argument)), os.curdir]:
        candidate = Path(folder) / IGNORE_FILE
        if candidate.is_file():
            found.setdefault(os.path.realpath(candidate), candidate)
    return list(found.values())


def read_baseline(path: Path) -> set[str]:
    """The sha256 of every file the report at ``path`` scored (.jsonl, .json) or has a finding for (.sarif)."""
    try:
        format = suffix_format(path)
        if format not in ("jsonl", "json", "sarif"):
            raise FormatError(f"a baseline is a .jsonl, .json or .sarif report, not {Path(path).suffix}")
        with open(path, encoding="utf-8") as file:
            if format == "jsonl":
                return {digest for number, line in enumerate(file, 1) if line.strip()
                        for digest in [_row_sha256(_json(line, f"{path}:{number}"), f"{path}:{number}")] if digest}
            document = _json(file.read(), str(path))
    except FormatError as exc:
        raise SuppressionError(f"--baseline {path}: {exc}") from None
    except (OSError, UnicodeError) as exc:
        raise SuppressionError(f"cannot read the baseline {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if format == "json":
            return {digest for row in document["items"] if (digest := _row_sha256(row, str(path)))}
        return {result["partialFingerprints"]["sha256/v1"] for run in document["runs"] for result in run["results"]
                if result.get("ruleId") != "ipdscan/scan-error" and "sha256/v1" in result.get("partialFingerprints", {})}
    except (KeyError, TypeError, AttributeError):
        raise SuppressionError(f"{path}: not an ipdscan {format} report") from None


def _json(text: str, where: str):
    try:
        return json.loads(text)
    except ValueError:
        raise SuppressionError(f"{where}: not JSON, so not an ipdscan report") from None


def _row_sha256(row, where: str) -> str:
    """The sha256 of a scored row; "" for an error row. Rows are checked as merge and --resume check them."""
    if problem := row_problem(row):
        raise SuppressionError(f"{where}: not an ipdscan report row ({problem})")
    return (row.get("sha256") or "").lower() if row["status"] == "ok" else ""


class Suppressions:
    """The rules and baseline of one scan; ``apply`` marks a finding they cover."""

    def __init__(self, rules: list[Rule] = (), baseline: set[str] = frozenset(), baseline_name: str = ""):
        self.rules, self.baseline, self.baseline_name = list(rules), set(baseline), baseline_name

    @classmethod
    def load(cls, inputs: list[str], ignore_file: Path | None = None, baseline: Path | None = None) -> Suppressions:
        rules = [rule for path in ignore_files(inputs, ignore_file) for rule in read_ignore_file(path)]
        return cls(rules, read_baseline(baseline) if baseline else set(), str(baseline or ""))

    def __bool__(self) -> bool:
        return bool(self.rules or self.baseline)

    def apply(self, result: Result) -> None:
        """Mark ``result`` (a finding) suppressed if a rule or the baseline covers it; the first rule wins."""
        for rule in self.rules:
            if rule.matches(result):
                result.suppressed, result.suppression_reason = IGNORE_FILE_SUPPRESSION, rule.reason
                return
        if result.sha256 and result.sha256.lower() in self.baseline:
            result.suppressed = BASELINE_SUPPRESSION
            result.suppression_reason = f"already reported in {self.baseline_name}"
