"""The .html report: one self-contained page a person can look at, for ``scan``, ``merge`` and ``report``.

A header (model, weights, threshold and where it came from, counts, times), then one card per input, highest
score first, error rows grouped by code at the end: an embedded thumbnail, the name, the score as a bar with the
threshold marked, the label, evidence badges with their detail, a "suppressed" badge with its reason for a finding
an ignore rule or baseline covers (counted apart, as the scan's summary does: never as flagged or declaring AI),
and the highest ``--crops`` tile drawn in ``score_colours``' scale (the explain heatmap's). A few lines of inline JavaScript filter, sort, search and page.

Safe by construction: the page is rendered by Jinja2 with autoescape, so no string from a file, path, URL or
metadata becomes markup; its Content-Security-Policy allows no network load at all (images only as data: URIs,
the page's own style and script only by hash), so even a mistake could not fetch or run anything.

Thumbnails are made when the report is written, from the local files named in the rows, and only from a file
whose bytes still have the row's sha256 (the page never shows a different picture under a scanned name); URLs are
not fetched again. They are embedded highest score first while the whole file stays under REPORT_CAP; the header
says how many were left out and why. Rows wait in memory until close(); the page has cards for the first
MAX_CARDS of them (and CARD_BYTES), and says so, on the page and on stderr, when there are more.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from jinja2 import Environment, PackageLoader
from markupsafe import escape
from PIL import Image, ImageOps

from ..scanning import image_plugins  # noqa: F401 - the HEIF/AVIF openers a scan has
from ..scanning.decode import MAX_PIXELS
from ..scanning.fetch import read_item
from ..scanning.fetch_options import FetchError
from ..scanning.item import Item
from ..scanning.result import Result
from ..scanning.urls import ARGUMENT_URL
from ..text import clean_strings, report_text, threshold_text
from .output_format import STDOUT
from .publish import publish
from .score_colours import score_colour_hex

REPORT_CAP = 48 << 20  # the page's size limit, thumbnails included: browsers open larger ones slowly
THUMBNAIL_SIDE = 256  # px, long side
THUMBNAIL_QUALITY = 70  # JPEG
# Why a card has no thumbnail. The page is first rendered with LEFT_OUT on every card, to measure what the
# thumbnails may add: the other reasons are no longer, so the page never grows past the cap by them.
LEFT_OUT, URL_INPUT, NOT_THE_FILE = "not embedded: size cap", "a URL: not fetched", "file gone or changed"
NOTE_BYTES = 1024  # room kept for the note on thumbnails, written once they are made
IMG_MARKUP = 100  # bytes of the elements around a thumbnail, over the page rendered without it
PAGE = 100  # cards in the document at a time (report.js reads it from the page)
# The page's cards are capped, so its size and the memory to write it are bounded for any row count (issue 33:
# 200,000 rows made a 135 MB page and took 1.47 GB): cards go in page order (highest score first, errors last)
# up to MAX_CARDS and CARD_BYTES of markup; the rest are counted in the header, not shown, and stderr says so.
MAX_CARDS = 20_000
CARD_BYTES = REPORT_CAP // 2  # the cards' markup, estimated; thumbnails may fill the rest of REPORT_CAP
CARD_MARKUP = 700  # bytes of a card's own markup besides its strings (a plain card is ~500)
HOW_TO_READ = ("A score is IPD-Net's probability that the image is AI-generated: read it as a ranking, not proof. "
               "Cards at or above the threshold are flagged and come first. Evidence badges are what a file's own "
               "metadata declares (C2PA, IPTC, generator text); missing metadata proves nothing.")

_environment = Environment(loader=PackageLoader("ipdscan.reports", "templates"), autoescape=True, trim_blocks=True,
                           lstrip_blocks=True)


class HtmlReport:
    """The .html writer: rows are kept until close(), which renders the page and publishes it atomically."""

    def __init__(self, path: Path, header: dict):
        self.path, self.header, self.rows = path, header, []

    def write(self, result: Result) -> None:
        self.rows.append(result)

    def flush(self) -> None:
        pass  # the page appears whole at close(), like .csv and .json

    def close(self, summary: dict) -> None:
        page = render(self.rows, {**self.header, **summary})
        publish(self.path, lambda out: out.write(page))
        if (shown := page.count('<li class="card')) < len(self.rows):  # the cap: stderr says so too
            where = "stdout" if self.path == STDOUT else self.path
            print(f"warning: the HTML report ({where}): {cards_cap_note(shown, len(self.rows))}", file=sys.stderr)


def render(results: list[Result], header: dict, cap: int = REPORT_CAP) -> str:
    """The report page for ``results`` (any order) and the scan's ``header`` (with the summary, when there is
    one): first without thumbnails, to know how many bytes are left for them under ``cap``."""
    header = clean_strings(header, report_text)
    ordered = sorted((r for r in results if r.ok), key=lambda r: (-r.score, r.input)) + \
        sorted((r for r in results if not r.ok), key=lambda r: (r.error_code, r.input))
    threshold = header.get("threshold")
    cards = _capped_cards(ordered, threshold)
    budget = cap - len(_page(cards, header, results, "").encode("utf-8")) - NOTE_BYTES
    note = _add_thumbnails(ordered, cards, budget, cap)
    if len(cards) < len(ordered):
        note = f"{cards_cap_note(len(cards), len(ordered))} {note}"
    return _page(cards, header, results, note)


def _capped_cards(ordered: list[Result], threshold) -> list[dict]:
    """The cards of the first rows of ``ordered``, up to MAX_CARDS and about CARD_BYTES of markup."""
    cards, size = [], 0
    for result in ordered[:MAX_CARDS]:
        card = _card(result, threshold)
        size += CARD_MARKUP + sum(len(escape(card[key])) for key in ("input", "search", "detail", "meta", "error",
                                                                     "suppression_reason") if card.get(key))
        if size > CARD_BYTES and cards:
            break
        cards.append(card)
    return cards


def cards_cap_note(shown: int, total: int) -> str:
    """What the page (and stderr) says when it shows only the first ``shown`` of ``total`` rows."""
    return (f"This page shows the first {shown:,} of {total:,} rows (highest scores first, errors last): a page is "
            f"capped at {MAX_CARDS:,} cards and {CARD_BYTES / 2**20:.0f} MiB of them. The counts cover every row; "
            "the .jsonl, .csv or .json report holds them all (ipdscan report REPORT --out x.csv).")


def _page(cards: list[dict], header: dict, results: list[Result], thumbnail_note: str) -> str:
    template = _environment.get_template("report.html.j2")
    css = _asset("report.css")
    script = _asset("report.js")
    csp = ("default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
           f"style-src '{_digest(css)}'; script-src '{_digest(script)}'")
    threshold = header.get("threshold")
    counts = Counter()
    for result in results:
        counts["scanned"] += 1
        counts["flagged"] += result.label == "ai" and not result.suppressed
        counts["declared"] += result.declares_ai and not result.suppressed
        counts["suppressed"] += bool(result.suppressed)
        counts["errors"] += not result.ok
    by_code = sorted(Counter(r.error_code for r in results if not r.ok).items())
    return template.render(
        cards=cards, header=header, css=css, script=script, csp=csp, page=PAGE, how_to_read=HOW_TO_READ,
        counts={**counts, "by_code": by_code}, interrupted=header.get("interrupted"),
        end_time=header.get("end_time"), thumbnail_note=thumbnail_note,
        threshold_shown=threshold_text(threshold) if isinstance(threshold, (int, float)) else "unknown",
        bar_threshold=_percent(threshold) if isinstance(threshold, (int, float)) else -1)


def _asset(name: str) -> str:
    return _environment.loader.get_source(_environment, name)[0]


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def _card(result: Result, threshold: float | None) -> dict:
    """What the template shows of one row: its strings cleaned (report_text), its numbers formatted."""
    row = clean_strings(result.to_dict(), report_text)
    evidence = [report_text(code) for code in result.evidence]
    detail = clean_strings(result.evidence_detail, report_text)
    card = {"input": row["input"], "label": row["label"], "error_code": row["error_code"], "error": row["error"],
            "flagged": result.label == "ai" and not result.suppressed,
            "declares_ai": result.declares_ai and not result.suppressed, "evidence": evidence,
            "suppressed": row["suppressed"], "suppression_reason": row["suppression_reason"],
            "detail": json.dumps(detail, indent=1, ensure_ascii=False, sort_keys=True) if detail else "",
            "width": result.width, "height": result.height, "thumb": None, "tile": None, "no_thumb": LEFT_OUT,
            "search": " ".join(filter(None, [row["input"], row["format"], row["label"], row["error_code"],
                                             row["suppressed"] and "suppressed " + row["suppressed"], *evidence]))}
    meta = [row["format"], f"{result.width}×{result.height}" if result.width else "",
            f"{result.bytes:,} bytes" if result.bytes is not None else "",
            " ".join(filter(None, [row["exif_make"], row["exif_model"]])), row["exif_software"], row["exif_datetime"]]
    card["meta"] = " · ".join(filter(None, meta))
    if result.score is not None:
        colour_threshold = threshold if isinstance(threshold, (int, float)) else 0.5
        card.update(score_text=f"{result.score:.4f}", bar=_percent(result.score),
                    colour=score_colour_hex(result.score, colour_threshold))
        box = _tile_box(result.crops_max_tile)
        if box and result.crops_max is not None and result.width and result.height:
            card["tile"] = dict(zip("xywh", box), score=f"{result.crops_max:.4f}",
                                colour=score_colour_hex(result.crops_max, colour_threshold))
            card["crops_mean"] = f"{result.crops_mean:.4f}" if result.crops_mean is not None else "?"
    return card


def _tile_box(text: str) -> tuple[int, ...] | None:
    try:
        box = tuple(int(part) for part in text.split(","))
    except ValueError:
        return None
    return box if len(box) == 4 else None


def _add_thumbnails(ordered: list[Result], cards: list[dict], budget: int, cap: int) -> str:
    """Give cards their thumbnails, in card order (highest score first) while ``budget`` bytes last; say what
    was left out and why."""
    embedded, over_cap, urls, unreadable = 0, 0, 0, 0
    for result, card in zip(ordered, cards):
        if not result.ok:
            continue
        if ARGUMENT_URL.match(result.input):
            urls += 1
            card["no_thumb"] = URL_INPUT
            continue
        if budget <= 0:
            over_cap += 1
            continue
        data = thumbnail(result)
        if data is None:
            unreadable += 1
            card["no_thumb"] = NOT_THE_FILE
            continue
        uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        if len(uri) + IMG_MARKUP > budget:
            budget, over_cap = 0, over_cap + 1  # and every lower score after it: the note can say which were left out
            continue
        budget -= len(uri) + IMG_MARKUP
        card["thumb"] = uri
        embedded += 1
    parts = [f"Thumbnails: {embedded} embedded"]
    if over_cap:
        parts.append(f"{over_cap} left out, lowest scores first, to keep this file under {cap / 2**20:.0f} MiB")
    if urls:
        parts.append(f"{urls} of URLs not shown (this page fetches nothing and the report does not download again)")
    if unreadable:
        parts.append(f"{unreadable} not shown because the file is gone, unreadable or no longer the file scanned")
    return "; ".join(parts) + "."


def thumbnail(result: Result) -> bytes | None:
    """A JPEG of the row's local file as displayed, at most THUMBNAIL_SIDE px on its long side; None when the
    file cannot be read or decoded, or its bytes are not those scanned: a row without a sha256 (hand-written,
    naming any private file) embeds nothing."""
    if not result.sha256:
        return None
    try:
        data = read_item(Item(result.input, "file"))
    except FetchError:
        return None
    if hashlib.sha256(data).hexdigest() != result.sha256.lower():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a file's own decoding quirks were reported by the scan already
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return None
                image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decoded at 1/2 to 1/8 scale, quickly
                small = ImageOps.exif_transpose(image)
                small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
                out = io.BytesIO()
                small.convert("RGB").save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    except Exception:  # noqa: BLE001 - a thumbnail that cannot be made is a card without one, not a lost report
        return None
    return out.getvalue()
