"""The HTML report's size is bounded for any row count (issue 33: 15): cards up to a cap, in page order, and the
page and stderr say how many rows were left out. (The sizes and memory of real runs: benchmarks/bench_html_scale.py.)"""
import re

from ipdscan.reports import html_report
from ipdscan.reports.html_report import render
from ipdscan.scanning.result import Result

HEADER = {"tool": "ipdscan", "model": "ipd-test", "threshold": 0.5}


def rows(n, name="img"):
    made = [Result(f"{name}{i:05}.png", score=(i % 1000) / 1000, label="ai" if i % 1000 >= 500 else "real",
                   sha256=f"{i:064x}", format="PNG", width=64, height=48) for i in range(n)]
    return made + [Result.failed(f"broken{i}.png", "decode_error", "truncated") for i in range(n // 10)]


def card_names(page):
    return re.findall(r'<div class="name">(.*?)</div>', page)


def test_the_page_shows_cards_up_to_the_cap_highest_scores_first_and_says_so(monkeypatch):
    monkeypatch.setattr(html_report, "MAX_CARDS", 5, raising=False)
    page = render(rows(12), HEADER)
    assert card_names(page) == ["img00011.png", "img00010.png", "img00009.png", "img00008.png", "img00007.png"]
    assert "This page shows the first 5 of 13 rows (highest scores first, errors last)" in page
    assert "13 scanned, 0 flagged" in " ".join(page.split()) and "decode_error: 1" in page  # counts cover every row
    assert "This page shows the first" not in render(rows(4), HEADER)  # under the cap: every row, no note


def test_the_page_size_does_not_grow_with_the_rows_past_the_cap(monkeypatch):
    monkeypatch.setattr(html_report, "MAX_CARDS", 50, raising=False)
    small, large = (len(render(rows(n), HEADER).encode()) for n in (100, 5_000))
    assert large - small < 200  # the counts' digits and the note, not 4,900 more cards
    monkeypatch.setattr(html_report, "MAX_CARDS", 10_000, raising=False)
    monkeypatch.setattr(html_report, "CARD_BYTES", 60_000, raising=False)  # long names: the markup cap comes first
    page = render(rows(200, name="x" * 2_000), HEADER)
    assert 5 < len(card_names(page)) < 20 and len(page.encode()) < 3 * 60_000


def test_scan_and_report_say_on_stderr_that_the_page_is_capped(monkeypatch, tmp_path, write_report, cli):
    monkeypatch.setattr(html_report, "MAX_CARDS", 3, raising=False)
    report = write_report(tmp_path / "big.jsonl", rows(10))
    result = cli.invoke(["report", report, "--out", tmp_path / "big.html"])
    assert result.exit_code == 0 and result.stdout == "", result.output
    assert (f"warning: the HTML report ({tmp_path / 'big.html'}): This page shows the first 3 of 11 rows"
            in result.stderr)
    assert len(card_names((tmp_path / "big.html").read_text())) == 3
