"""Findings a team has already looked at, kept out of the verdict: ignore files and a baseline report.

An ignore file (``.ipdscanignore``, or ``--ignore-file FILE`` instead of them all) has one rule a line, each with
an optional ``# reason`` after a space:

    sha256:<64 hex digits>     the file with these bytes                        # the logo, reviewed 2024-05
    logos/*.png                a glob on the path relative to the ignore file's folder ("*" crosses folders)
    hero.jpg                   without a "/", a glob on the file name, in any folder below
    # a comment line; blank lines are skipped

One rule for every way a scan is called: a rule covers only local files at or below its own file's folder (never
a file elsewhere, never a URL), and a file is covered by the ``.ipdscanignore`` of its own folder and of each
folder above it, up to the current directory (for a file outside the current directory: up to the folder named
on the command line, or the file's own folder). So ``scan assets``, ``scan assets/a.jpg`` (as pre-commit calls
it) and ``scan assets/sub`` read the same files for ``assets/sub/b.jpg``. gitignore syntax that means something
else here (``sub/``, ``./x``, ``!x``, ``../x``, backslashes) is an error naming FILE:LINE, never a dead rule.

A baseline (``--baseline OLD_REPORT``: an ipdscan .jsonl, .json or .sarif report) names the files an earlier scan
already reported as findings, by sha256: rows labelled ai or declaring AI generation, whatever the format (a .sarif
log holds only those; a file scored real then is a new finding if it is one now). It covers URLs too. A SARIF log
another tool wrote is refused.

A finding (``verdict.is_finding``: a row labelled ai, over --fail-on, or declaring AI generation) that a rule or the
baseline covers stays in the report, marked (``suppressed`` = "ignore-file" or "baseline", ``suppression_reason``:
the rule's reason and FILE:LINE), and does not count towards --fail-on or --fail-on-evidence. A row that could not
be scanned is still an error for --fail-on-error: suppression silences findings, not failures.

Every one of these files is read by ``trusted_text.read_trusted_text`` (a regular file, capped; a discovered
ignore file only inside its own folder), and a bad line is reported by number, never echoed.
"""
from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

from ..evidence.vocabulary import codes_indicate_ai
from ..scanning.result import Result, row_problem
from ..scanning.urls import ARGUMENT_URL
from ..text import displayable_text
from ..trusted_text import TrustedFileError, read_trusted_text
from .output_format import FormatError, suffix_format

IGNORE_FILE = ".ipdscanignore"
IGNORE_FILE_MAX_BYTES = 64 << 20  # ~1.5 million rules of 40 characters
BASELINE_MAX_BYTES = 1 << 30  # a report of some two million rows
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
REASON = re.compile(r"\s+#\s?")  # " # why": a "#" inside a name is part of the glob
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
WILDCARD = re.compile(r"[*?[]")
GLOBS_PER_PATTERN = 500  # globs with no literal head joined into one regular expression
IGNORE_FILE_SUPPRESSION, BASELINE_SUPPRESSION = "ignore-file", "baseline"


class SuppressionError(ValueError):
    """An ignore file or baseline that cannot be used: one line naming the file (and line), exit 2."""


@dataclass(frozen=True)
class Rule:
    sha256: str  # lower-case hex, or "" for a glob rule
    glob: str  # without a "/": on the file name; with one: on the path relative to the ignore file's folder
    reason: str  # "the comment (FILE:LINE)", or FILE:LINE when it has none


class GlobTable:
    """Globs compiled once, for a table of hundreds of thousands (issue 33: a generated allow-list cost 30 s per
    finding when every glob was tried). Literal globs are a dict; a wildcard glob is tried only on a text that
    starts with its literal head (the text before its first wildcard), and those with no head (``*.png``) are
    joined into a few regular expressions, matched in C. ``first(text)``: the index of the first glob that
    matches ``text``, or None."""

    def __init__(self, globs: Iterable[tuple[int, str]]):
        self.literal: dict[str, int] = {}
        self.by_head: dict[str, list[tuple[int, str]]] = {}
        self.headless: list[tuple[int, str]] = []
        for index, glob in globs:
            head = WILDCARD.split(glob, maxsplit=1)[0]
            if head == glob:
                self.literal.setdefault(glob, index)
            elif head:
                self.by_head.setdefault(head, []).append((index, glob))
            else:
                self.headless.append((index, glob))
        self.head_lengths = sorted({len(head) for head in self.by_head})
        self.chunks = [self.headless[start:start + GLOBS_PER_PATTERN]
                       for start in range(0, len(self.headless), GLOBS_PER_PATTERN)]
        self.joined = [re.compile("|".join(f"(?:{translate(glob)})" for _, glob in chunk)) for chunk in self.chunks]

    def first(self, text: str) -> int | None:
        found = [self.literal.get(text)]
        for length in self.head_lengths:
            found += [next((index for index, glob in self.by_head.get(text[:length], ())
                            if _compiled(glob).match(text)), None)]
        for joined, chunk in zip(self.joined, self.chunks):
            if joined.match(text):  # which glob of the chunk, only now: a match is rare
                found.append(next(index for index, glob in chunk if _compiled(glob).match(text)))
                break
        return min((index for index in found if index is not None), default=None)


@functools.lru_cache(maxsize=4096)
def _compiled(glob: str) -> re.Pattern:
    return re.compile(translate(glob))


class IgnoreFile:
    """The rules of one ignore file, compiled once; ``covering(result, relative)`` is the first rule that covers a
    file at ``relative`` (a POSIX path below the file's folder), or None."""

    def __init__(self, path: Path, rules: list[Rule]):
        self.path, self.rules = path, rules
        self.folder = Path(os.path.abspath(path)).parent
        self.by_sha256: dict[str, int] = {}
        for index, rule in enumerate(rules):
            if rule.sha256:
                self.by_sha256.setdefault(rule.sha256, index)
        self.names = GlobTable((i, rule.glob) for i, rule in enumerate(rules) if rule.glob and "/" not in rule.glob)
        self.paths = GlobTable((i, rule.glob.lstrip("/")) for i, rule in enumerate(rules) if "/" in rule.glob)

    def covering(self, result: Result, relative: str) -> Rule | None:
        found = [index for index in (self.by_sha256.get(result.sha256.lower()) if result.sha256 else None,
                                     self.names.first(relative.rpartition("/")[2]), self.paths.first(relative))
                 if index is not None]
        return self.rules[min(found)] if found else None


def read_ignore_file(path: Path, governs: bool = True) -> IgnoreFile:
    """The rules of an ignore file; SuppressionError naming FILE:LINE for a line that is not one. ``governs``: the
    file was found in the folder it governs, and must not be a link out of it (a named --ignore-file may)."""
    folder = Path(os.path.abspath(path)).parent
    try:
        text = read_trusted_text(path, what="ignore file", max_bytes=IGNORE_FILE_MAX_BYTES,
                                 within=folder if governs else None)
    except TrustedFileError as exc:
        raise SuppressionError(str(exc)) from None
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        where, stripped = f"{path}:{number}", line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pattern, reason = (REASON.split(stripped, maxsplit=1) + [""])[:2]
        if problem := _pattern_problem(pattern):
            raise SuppressionError(f"{where}: {problem}")  # never the line: it may not be a rule at all
        sha256 = pattern[len("sha256:"):].lower() if pattern.startswith("sha256:") else ""
        reason = CONTROL.sub("", reason).strip()
        rules.append(Rule(sha256, "" if sha256 else pattern, f"{reason} ({where})" if reason else where))
    return IgnoreFile(Path(path), rules)


def _pattern_problem(pattern: str) -> str | None:
    if CONTROL.search(pattern):
        return "a control character in the rule"
    if pattern.lower().startswith("sha256:"):
        return None if pattern.startswith("sha256:") and SHA256.fullmatch(pattern[7:]) else \
            "expected sha256:<64 hex digits>"
    if "\\" in pattern:
        return "a backslash in the rule: ignore rules have no escapes and use / between folders"
    if pattern.startswith("!"):
        return "a rule starting with '!': ignore files have no negation"
    if pattern.endswith("/"):
        return "a rule ending with '/': rules name files; to cover a folder's files write folder/*"
    if pattern.startswith("./") or "/./" in pattern:
        return "a './' in the rule: paths are already relative to the ignore file's folder"
    if pattern.startswith("../") or "/../" in pattern or pattern.endswith("/.."):
        return "a '..' in the rule: a rule covers only its own folder and the folders below it"
    if pattern.count("[") != pattern.count("]"):
        return "an unclosed [ in the glob"
    return None


class Exclusions:
    """``--exclude GLOB``: the local files a scan skips entirely (never read, no row, nothing to suppress), matched by
    the ignore files' glob rule: a glob without a "/" on the file name, one with a "/" on the path relative to the
    current directory (a file outside it: its absolute path); "*" crosses folders. ``excluded(path)``: whether
    ``path`` (as listed) is one. URLs are never excluded."""

    def __init__(self, globs: Iterable[str], cwd: str | None = None):
        self.globs = tuple(globs)
        for glob in self.globs:
            if problem := exclude_problem(glob):
                raise ValueError(f"--exclude {glob}: {problem}")
        self.cwd = os.path.abspath(cwd if cwd is not None else os.curdir)
        self.names = GlobTable((i, glob) for i, glob in enumerate(self.globs) if "/" not in glob)
        self.paths = GlobTable((i, glob.lstrip("/")) for i, glob in enumerate(self.globs) if "/" in glob)

    def excluded(self, path: str) -> bool:
        absolute = os.path.abspath(path)
        inside = absolute.startswith(self.cwd.rstrip(os.sep) + os.sep)
        relative = (os.path.relpath(absolute, self.cwd) if inside else absolute).replace(os.sep, "/").lstrip("/")
        return self.names.first(relative.rpartition("/")[2]) is not None or self.paths.first(relative) is not None


def exclude_problem(glob: str) -> str | None:
    """Why ``glob`` is not an --exclude glob (the ignore files' glob syntax), or None."""
    if not glob.strip():
        return "an empty glob"
    if glob.lower().startswith("sha256:"):
        return "--exclude takes path globs; a sha256: rule belongs in an ignore file"
    if glob.startswith("../") or "/../" in glob or glob.endswith("/.."):
        return "a '..' in the glob: paths are matched from the current directory down (outside it: absolute paths)"
    problem = _pattern_problem(glob)  # the ignore files' syntax, in --exclude's words
    for rule_word, glob_word in (("the rule", "the glob"), ("a rule ", "a glob "), ("ignore rules", "globs"),
                                 ("ignore files have", "--exclude has"), ("rules name", "globs name")):
        problem = problem and problem.replace(rule_word, glob_word)
    return problem


def read_baseline(path: Path) -> set[str]:
    """The sha256 of every file the ipdscan report at ``path`` has a finding for: a row labelled ai or declaring
    AI generation, which is what a .sarif log holds, so a .jsonl, .json or .sarif baseline of one scan covers the
    same files. A SARIF log another tool wrote is refused."""
    try:
        format = suffix_format(path)
        if format not in ("jsonl", "json", "sarif"):
            raise FormatError(f"a baseline is a .jsonl, .json or .sarif report, not {Path(path).suffix}")
        text = read_trusted_text(path, what="baseline", max_bytes=BASELINE_MAX_BYTES)
    except FormatError as exc:
        raise SuppressionError(f"--baseline {path}: {exc}") from None
    except TrustedFileError as exc:
        raise SuppressionError(str(exc)) from None
    if format == "jsonl":
        return {digest for number, line in enumerate(text.splitlines(), 1) if line.strip()
                for digest in [_row_sha256(_json(line, f"{path}:{number}"), f"{path}:{number}")] if digest}
    document = _json(text, str(path))
    try:
        if format == "json":
            return {digest for row in document["items"] if (digest := _row_sha256(row, str(path)))}
        for run in document["runs"]:
            driver = run.get("tool", {}).get("driver", {}).get("name") if isinstance(run, dict) else None
            if driver != "ipdscan":
                by = f"{displayable_text(driver)[:80]!r}" if isinstance(driver, str) else "another tool"
                raise SuppressionError(f"{path}: a SARIF log written by {by}, not by ipdscan; a baseline is an "
                                       "earlier ipdscan report")
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
    """The sha256 of a row that is a finding (as the SARIF writer has a result for it: labelled ai, or declaring
    AI generation); "" for any other. Rows are checked as merge and --resume check them."""
    if problem := row_problem(row):
        raise SuppressionError(f"{where}: not an ipdscan report row ({problem})")
    evidence = row.get("evidence") or ""
    codes = evidence.split(";") if isinstance(evidence, str) else evidence
    finding = (row["status"] == "ok" and row.get("label") == "ai") or codes_indicate_ai(codes)
    return (row.get("sha256") or "").lower() if finding else ""


class Suppressions:
    """The ignore files and baseline of one scan; ``apply`` marks a finding they cover.

    The ignore files of the folders the arguments name (and of the folders above them, up to the top: see the
    module's docstring) are read at once, so a bad line is an error before the scan starts; those of folders
    below are read when a finding there first needs them.
    """

    def __init__(self, inputs: Iterable[str] = (), ignore_file: Path | None = None, baseline: Path | None = None):
        self.cwd = Path.cwd()
        local = [Path(os.path.abspath(argument)) for argument in inputs
                 if argument != "-" and not ARGUMENT_URL.match(argument) and os.path.exists(argument)]
        self.argument_folders = [path if path.is_dir() else path.parent for path in local]
        self.explicit = read_ignore_file(ignore_file, governs=False) if ignore_file is not None else None
        self.baseline = read_baseline(baseline) if baseline else set()
        self.baseline_name = str(baseline or "")
        self._found: dict[Path, IgnoreFile | None] = {}
        if self.explicit is None:
            for folder in self.argument_folders:
                self.ignore_files_for(folder / IGNORE_FILE)

    def ignore_files_for(self, path: Path) -> list[IgnoreFile]:
        """The ignore files that cover the local file ``path`` (absolute), nearest first."""
        if self.explicit is not None:
            return [self.explicit] if self.explicit.folder in path.parents else []
        top = self._top(path)
        chain = []
        for folder in path.parents:
            if folder not in self._found:
                candidate = folder / IGNORE_FILE
                self._found[folder] = read_ignore_file(candidate) if os.path.lexists(candidate) else None
            if self._found[folder] is not None:
                chain.append(self._found[folder])
            if folder == top:
                break
        return chain

    def _top(self, path: Path) -> Path:
        """The highest folder whose ignore file covers ``path``: the current directory when ``path`` is below it,
        else the outermost folder argument above it, else its own folder."""
        if self.cwd in path.parents:
            return self.cwd
        return min((folder for folder in self.argument_folders if folder in path.parents),
                   key=lambda folder: len(folder.parts), default=path.parent)

    def apply(self, result: Result) -> None:
        """Mark ``result`` (a finding) suppressed if a rule or the baseline covers it: the nearest ignore file's
        first rule that does, else the baseline."""
        if not ARGUMENT_URL.match(result.input):
            path = Path(os.path.abspath(result.input))
            for ignore_file in self.ignore_files_for(path):
                rule = ignore_file.covering(result, path.relative_to(ignore_file.folder).as_posix())
                if rule is not None:
                    result.suppressed, result.suppression_reason = IGNORE_FILE_SUPPRESSION, rule.reason
                    return
        if result.sha256 and result.sha256.lower() in self.baseline:
            result.suppressed = BASELINE_SUPPRESSION
            result.suppression_reason = f"already reported in {self.baseline_name}"
