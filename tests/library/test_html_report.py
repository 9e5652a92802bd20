"""The .html report: what the page holds (parsed here), and how a real headless browser shows it (slow tests)."""
import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipdscan.reports.html_report import IMG_MARKUP, NOTE_BYTES, HtmlReport, render, thumbnail
from ipdscan.reports.writers import open_report
from ipdscan.scanning.result import Result

import evidence_files
from images import natural

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEADER = {"tool": "ipdscan", "version": "0.1.0", "model": "test-model", "variant": "layer2", "weights_sha256": "ab" * 32,
          "threshold": 0.6, "threshold_source": "weights", "device": "cpu", "precision": "fp32",
          "start_time": "2024-01-02T03:04:05+00:00", "inputs": ["photos"]}
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"
HOSTILE_TEXT = "</script><script>document.title='pwned'</script>"


class Page(HTMLParser):
    """A page's elements and its cards: each card's classes, name and score as the text shows them."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.cards: list[dict] = []
        self.text: list[str] = []
        self._in = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        classes = (attrs.get("class") or "").split()
        if tag == "li" and "card" in classes:
            self.cards.append({"classes": classes, "name": "", "img": False, "hidden": "hidden" in attrs, "text": ""})
        elif self.cards and tag == "img":
            self.cards[-1]["img"] = True
        self._in = "name" if "name" in classes else "title" if tag == "title" else self._in

    def handle_endtag(self, tag):
        if tag in ("div", "title"):
            self._in = None

    def handle_data(self, data):
        self.text.append(data)
        if self.cards:
            self.cards[-1]["text"] += data
        if self._in == "name":
            self.cards[-1]["name"] += data
        elif self._in == "title":
            self.title = data

    def scores(self) -> list[float]:
        return [float(re.search(r"score (\d\.\d{4})", card["text"])[1]) for card in self.cards
                if "error" not in card["classes"]]

    def tags(self, name: str) -> list[dict]:
        return [attrs for tag, attrs in self.elements if tag == name]


def with_file(path: Path, score: float, image: Image.Image | None = None, **fields) -> Result:
    """A scored row for an image written to ``path`` (its sha256 as a scan would record it)."""
    (image or natural()).save(path)
    return Result(str(path), score=score, label="ai" if score >= 0.6 else "real",
                  sha256=hashlib.sha256(path.read_bytes()).hexdigest(), width=64, height=48, **fields)


def scan_to_page(inputs: Path, out: Path, checkpoint: Path, cli) -> None:
    result = cli.invoke(["scan", str(inputs), "--weights", str(checkpoint), "--workers", "0",
                         "--device", "cpu", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_hostile_names_and_metadata_are_text_never_markup():
    rows = [Result(HOSTILE_NAME, score=0.9, label="ai", exif_software=HOSTILE_TEXT,
                   evidence=["png:parameters"], evidence_detail={"parameters": HOSTILE_TEXT + "<b onclick=x>"}),
            Result.failed("https://***@host/<svg onload=alert(1)>", "http_404", HOSTILE_TEXT)]
    page = Page(render(rows, {**HEADER, "inputs": [HOSTILE_NAME]}))
    assert len(page.tags("script")) == 1 and not page.tags("svg onload") and not page.tags("b")
    assert all(not name.startswith("on") for _, attrs in page.elements for name in attrs)  # no handler anywhere
    assert [card["name"] for card in page.cards] == [HOSTILE_NAME, "https://***@host/<svg onload=alert(1)>"]
    text = "".join(page.text)
    assert text.count(HOSTILE_TEXT) >= 3 and HOSTILE_NAME in text  # EXIF, evidence detail, error; the header


def test_one_card_per_row_highest_score_first_errors_grouped_at_the_end():
    rows = [Result("b.png", score=0.2, label="real"), Result.failed("x.png", "not_found", "gone"),
            Result("a.png", score=0.95, label="ai"), Result.failed("y.png", "decode_error", "bad"),
            Result("c.png", score=0.61, label="ai", evidence=["c2pa:trainedAlgorithmicMedia"])]
    page = Page(render(rows, HEADER))
    assert [card["name"] for card in page.cards] == ["a.png", "c.png", "b.png", "y.png", "x.png"]
    assert page.scores() == [0.95, 0.61, 0.2]
    assert [("flagged" in c["classes"], "declared" in c["classes"], "error" in c["classes"]) for c in page.cards] \
        == [(True, False, False), (True, True, False), (False, False, False), (False, False, True), (False, False, True)]
    header = "".join(page.text)
    assert "0.6000 (from weights)" in header and "2 errors (decode_error: 1, not_found: 1)" in header


def test_only_the_first_page_of_cards_is_shown_before_the_script_runs():
    page = Page(render([Result(f"{i:03}.png", score=i / 300, label="real") for i in range(250)], HEADER))
    assert [card["hidden"] for card in page.cards] == [False] * 100 + [True] * 150


def test_the_page_may_load_nothing_and_run_only_its_own_script():
    text = render([Result("a.png", score=0.5, label="real")], HEADER)
    (meta,) = [attrs for attrs in Page(text).tags("meta") if attrs.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in meta["content"].split(";"))
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"
    script = re.search(r"<script>(.*?)</script>", text, re.S)[1]
    assert policy["script-src"] == f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


def test_thumbnails_only_of_the_files_scanned_and_under_the_size_cap(tmp_path):
    big = with_file(tmp_path / "big.png", 0.9, natural(900, 600, seed=1), crops_max=0.95, crops_mean=0.5,
                    crops_max_tile="0,0,224,224")
    changed = with_file(tmp_path / "changed.png", 0.8)
    (tmp_path / "changed.png").write_bytes(b"other bytes")  # not the file the row describes any more
    url = Result("https://example.com/a.png", score=0.7, label="ai")
    low = with_file(tmp_path / "low.png", 0.1)
    page = Page(render([big, changed, url, low], HEADER))
    assert [card["img"] for card in page.cards] == [True, False, False, True]
    (thumb,) = [attrs["src"] for attrs in page.tags("img")][:1]
    image = Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (256, 171)  # the long side bounded
    assert len(page.tags("rect")) >= 1 + 2 * 3  # the --crops tile over the thumbnail, and three score bars
    note = "".join(page.text)
    assert "Thumbnails: 2 embedded" in note and "1 of URLs not shown" in note and "1 not shown because" in note
    without = len(render([big, low], HEADER, cap=0).encode())
    big_thumbnail = len(base64.b64encode(thumbnail(big))) + len("data:image/jpeg;base64,") + IMG_MARKUP + NOTE_BYTES
    capped = render([big, low], HEADER, cap=without + big_thumbnail + 10)  # room for the first thumbnail only
    assert [card["img"] for card in Page(capped).cards] == [True, False] and len(capped.encode()) <= without + \
        big_thumbnail + 10
    assert "1 left out, lowest scores first, to keep this file under" in capped


def test_an_interrupted_scan_is_marked_and_the_page_appears_only_at_close(tmp_path):
    path = tmp_path / "r.html"
    writer = open_report(path, HEADER)
    assert isinstance(writer, HtmlReport)
    writer.write(Result("a.png", score=0.5, label="real"))
    writer.flush()
    assert not path.exists()
    writer.close({"interrupted": True, "end_time": "2024-01-02T03:05:00+00:00"})
    text = "".join(Page(path.read_text(encoding="utf-8")).text)
    assert "Interrupted scan:" in text and "2024-01-02T03:05:00+00:00" in text


def test_merge_and_report_write_the_page_from_jsonl_and_csv_parts(tmp_path, cli, write_report):
    rows = [with_file(tmp_path / f"p{i}.png", i / 4) for i in range(4)]
    for name, part in (("one.jsonl", rows[:2]), ("two.csv", rows[2:])):
        write_report(tmp_path / name, part, HEADER)
    result = cli.invoke(["merge", str(tmp_path / "one.jsonl"), str(tmp_path / "two.csv"),
                                 "--out", str(tmp_path / "merged.html")])
    assert result.exit_code == 0, result.output
    merged = Page((tmp_path / "merged.html").read_text(encoding="utf-8"))
    assert [card["name"] for card in merged.cards] == [row.input for row in reversed(rows)]
    assert all(card["img"] for card in merged.cards)
    result = cli.invoke(["report", str(tmp_path / "two.csv"), "--out", str(tmp_path / "two.html")])
    assert result.exit_code == 0, result.output
    page = Page((tmp_path / "two.html").read_text(encoding="utf-8"))
    assert len(page.cards) == 2 and "0.6000 (from weights)" in "".join(page.text)  # from the CSV's header file
    assert "2024-01-02T03:05:00+00:00" in "".join(page.text)
    missing = cli.invoke(["report", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x.html")])
    assert missing.exit_code == 2 and "no such report" in missing.stderr


def test_suppressed_rows_keep_their_mark_through_a_csv_and_show_as_suppressed(tmp_path, cli, write_report):
    """A finding an ignore rule or baseline covers is a card with a badge and reason, counted apart from flagged."""
    rows = [with_file(tmp_path / "logo.png", 0.9, suppressed="ignore-file", suppression_reason="our logo"),
            with_file(tmp_path / "new.png", 0.8), with_file(tmp_path / "cat.png", 0.1)]
    write_report(tmp_path / "scan.csv", rows, HEADER)
    assert cli.invoke(["merge", str(tmp_path / "scan.csv"), "--out", str(tmp_path / "all.jsonl")]).exit_code == 0
    assert [Result.from_row(json.loads(line)).suppressed for line in (tmp_path / "all.jsonl").open()] == \
        ["ignore-file", "", ""]
    result = cli.invoke(["report", str(tmp_path / "scan.csv"), "--out", str(tmp_path / "scan.html")])
    assert result.exit_code == 0, result.output
    page = Page((tmp_path / "scan.html").read_text(encoding="utf-8"))
    logo = page.cards[0]
    assert "suppressed" in logo["classes"] and "flagged" not in logo["classes"]
    assert "suppressed: ignore-file" in logo["text"] and "our logo" in logo["text"]
    assert "flagged" in page.cards[1]["classes"] and "suppressed" not in page.cards[1]["classes"]
    text = " ".join("".join(page.text).split())
    assert "3 scanned, 1 flagged" in text and "1 suppressed (ignore file, baseline)" in text
    assert page.title.endswith("1 flagged")


@pytest.mark.slow
def test_scan_writes_the_page_with_thumbnails_and_evidence(tmp_path, checkpoint, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        natural(80, 60, seed=i).save(photos / f"p{i}.png")
    (photos / "gen.png").write_bytes(evidence_files.png_with_text(parameters=evidence_files.A1111))
    scan_to_page(photos, tmp_path / "r.html", checkpoint, cli)
    page = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert len(page.cards) == 4 and all(card["img"] for card in page.cards)
    assert [c["name"].rsplit("/", 1)[-1] for c in page.cards if "declared" in c["classes"]] == ["gen.png"]
    assert page.scores() == sorted(page.scores(), reverse=True)


@pytest.mark.slow
def test_the_examples_page_in_a_real_browser(tmp_path, checkpoint, browser, cli):
    out = tmp_path / "r.html"
    scan_to_page(EXAMPLES, out, checkpoint, cli)
    page = Page(browser.dump_dom(out))
    assert len(page.cards) == 8 and all(card["img"] and not card["hidden"] for card in page.cards)
    assert page.scores() == sorted(page.scores(), reverse=True)
    assert "cards 1–8 of 8" in "".join(page.text)  # the script ran and drew its page
    shot = np.asarray(Image.open(browser.screenshot(out, tmp_path / "shot.png")).convert("RGB"))
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 1000  # thumbnails, not a blank page


@pytest.mark.slow
def test_a_hostile_folder_runs_nothing_and_fetches_nothing_in_a_real_browser(tmp_path, checkpoint, browser,
                                                                            http_server, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    fetch = f"<img src={http_server.url('/img/name.png')}>"
    natural().save(photos / HOSTILE_NAME)
    (photos / "exif.jpg").write_bytes(evidence_files.jpeg_with_exif(software=HOSTILE_TEXT + fetch))
    (photos / "chunk.png").write_bytes(evidence_files.png_with_text(
        parameters=evidence_files.A1111 + HOSTILE_TEXT + f"<script src={http_server.url('/img/x.js')}></script>"))
    out = tmp_path / "r.html"
    scan_to_page(photos, out, checkpoint, cli)
    page = Page(browser.dump_dom(out))
    assert page.title.startswith("ipdscan report") and len(page.tags("script")) == 1
    assert len(page.tags("img")) == 3 and all(attrs["src"].startswith("data:image/jpeg;base64,")
                                              for attrs in page.tags("img"))
    assert sorted(card["name"].rsplit("/", 1)[-1] for card in page.cards) == sorted([HOSTILE_NAME, "exif.jpg",
                                                                                      "chunk.png"])
    assert HOSTILE_TEXT + fetch in "".join(page.text)
    declared = Page(browser.dump_dom(out.resolve().as_uri() + "#filter=declared"))  # the filter, by its address
    assert [card["name"].rsplit("/", 1)[-1] for card in declared.cards] == ["chunk.png"]
    assert http_server.requests == []


@pytest.mark.slow
def test_a_later_page_shows_its_cards_and_thumbnails_in_a_real_browser(tmp_path, browser):
    rows = [with_file(tmp_path / f"{i:03}.png", i / 150, natural(16, 12, seed=i)) for i in range(150)]
    out = tmp_path / "r.html"
    out.write_text(render(rows, HEADER), encoding="utf-8")
    page = Page(browser.dump_dom(out.resolve().as_uri() + "#page=2"))
    assert [card["name"] for card in page.cards] == [str(tmp_path / f"{i:03}.png") for i in range(49, -1, -1)]
    assert all(attrs.get("src", "").startswith("data:image/jpeg") for attrs in page.tags("img"))
    assert len(page.tags("img")) == 50 and "cards 101–150 of 150" in "".join(page.text)


def test_a_row_without_a_sha256_embeds_no_file(tmp_path, write_report, cli):
    """Issue 33, item 3: a hand-written row naming a private file became a thumbnail in `ipdscan report`'s page."""
    private = with_file(tmp_path / "private.png", 0.9)
    hand_written = Result(private.input, score=0.9, label="ai", width=64, height=48)  # no sha256
    assert thumbnail(hand_written) is None and thumbnail(private) is not None
    write_report(tmp_path / "rows.jsonl", [hand_written], header=HEADER)
    result = cli("report", tmp_path / "rows.jsonl", "--out", tmp_path / "page.html")
    assert result.exit_code == 0, result.output
    page = Page((tmp_path / "page.html").read_text())
    assert [card["img"] for card in page.cards] == [False] and not page.tags("img")
