"""Text from whoever named the files, wrote the URL list or the EXIF, on its way into a report: one rule per
audience, and one walk that applies a rule to every string of a row or header (dict keys too).

    report_text(text)       undecodable bytes as ``\\xNN`` escapes, reversibly (``report_bytes``): the .csv/.json/.jsonl
                            reports and the terminal
    displayable_text(text)  undecodable bytes as U+FFFD, as a viewer shows them: SARIF messages and properties
    csv_text(value)         report_text, control characters as \\xNN, and a CSV cell a spreadsheet never runs as a
                            formula (a leading '): every .csv ipdscan writes
    csv_cell_value(cell)    a cell read back from such a CSV: csv_text's leading ' removed, so every name reads back
                            as it was written (``report_bytes`` then reverses the escapes)
    clean_strings(value, rule)  ``rule`` applied to every string inside dicts and lists

and the one way a threshold is printed (``threshold_text``), in the summary, the reports and the heatmap legend.
"""
from __future__ import annotations

import re
from collections.abc import Callable

CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # C0 but tab, LF and CR, and DEL: terminal escapes, bells
CONTROL = re.compile(f"[{CONTROLS}]")
# A backslash a reader of report_text's escapes would misread: before xNN, a backslash, an undecodable byte, or a
# control character (which csv_text writes as \xNN).
AMBIGUOUS_BACKSLASH = re.compile(f"\\\\(?=\\\\|x[0-9a-f]{{2}}|[\udc80-\udcff{CONTROLS}])")
WRITTEN_ESCAPE = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def report_text(text: str) -> str:
    """The rule for text no UTF-8 report can hold: undecodable bytes become ``\\xNN`` escapes, and a backslash that
    a reader would take for the start of one (before ``xNN``, another backslash or an undecodable byte) is doubled.

    A file name with the Latin-1 byte 0xE9 reaches Python as "caf\\udce9.jpg" and is written as "caf\\\\xe9.jpg"
    (a backslash, then x, e, 9); a name that really holds those four characters is written "caf\\\\\\\\xe9.jpg",
    so the two never share a row. Valid text without such a backslash is unchanged; ``report_bytes`` reverses it.
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that came from no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\\" in text:
        text = AMBIGUOUS_BACKSLASH.sub(r"\\\\", text)
        raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def report_bytes(written: str) -> str:
    """The text ``report_text`` wrote ``written`` from: the name a scan finds again (``--resume``, ``merge``)."""
    if "\\" not in written:
        return written
    raw = WRITTEN_ESCAPE.sub(lambda m: b"\\" if m[1] == b"\\" else bytes([int(m[1][1:], 16)]), written.encode("utf-8"))
    return raw.decode("utf-8", "surrogateescape")


def displayable_text(text: str) -> str:
    """``text`` as valid UTF-8 for a viewer: the undecodable bytes of a file name (lone surrogates, from
    os.fsdecode) become U+FFFD replacement characters."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that came from no byte
        return text.encode("utf-8", "replace").decode("utf-8")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what makes a spreadsheet read a cell as a formula


def csv_text(value):
    """A CSV cell that a spreadsheet shows as text: a string gets ``report_text``'s escapes, its control characters
    too (an ESC or BEL in a file name reached the terminal of whoever ran cat on the report), and a leading ' if it
    would start a formula, or itself starts with ', so that the two never share a cell ("=x" is written '=x,
    "'=x" is written ''=x); anything else is returned as it is."""
    if not isinstance(value, str):
        return value
    value = CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", report_text(value))
    return "'" + value if value.startswith(FORMULA_STARTS + ("'",)) else value


def csv_cell_value(cell: str) -> str:
    """A text cell read back from a CSV that ``csv_text`` wrote: without the ' it added (a leading ' is always
    one it added)."""
    return cell[1:] if cell.startswith("'") else cell


def clean_strings(value, rule: Callable[[str], str]):
    """``value`` with ``rule`` applied to every string in it, dict keys included (as strings), tuples as lists."""
    if isinstance(value, str):
        return rule(value)
    if isinstance(value, dict):
        return {rule(str(key)): clean_strings(item, rule) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_strings(item, rule) for item in value]
    return value


def threshold_text(threshold: float) -> str:
    """A threshold as every message and report shows it: 4 decimals (0.6120), as the README and model card write it."""
    return f"{threshold:.4f}"
