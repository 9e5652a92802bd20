"""What a person reads in the terminal: the result table's evidence column and the end summary."""
import pytest
from rich.console import Console

from ipdscan.cli import console
from ipdscan.cli.console import print_summary, result_table
from ipdscan.scanning.result import Result
from ipdscan.scanning.verdict import ScanStats
from ipdscan.text import threshold_text

import evidence_files


def rendered(renderable) -> str:
    out = Console(width=200, color_system=None, record=True)
    out.print(renderable)
    return out.export_text()


def test_a_file_that_declares_ai_is_never_a_plain_green_real():
    declared = Result("gen.png", score=0.1, label="real", evidence=["png:parameters"])
    plain = Result("photo.jpg", score=0.1, label="real")
    table = result_table([declared, plain])
    text = rendered(table)
    assert "declared-ai" in text.splitlines()[3] and "declared-ai" not in text.splitlines()[4]
    assert [column.header for column in table.columns][:4] == ["input", "score", "label", "evidence"]
    labels = table.columns[2]._cells
    assert labels == ["[yellow]real[/]", "[green]real[/]"]


@pytest.fixture
def summary(monkeypatch):
    """print_summary's stderr lines, as plain text."""
    captured = Console(width=300, color_system=None, record=True)
    monkeypatch.setattr(console, "stderr", captured)
    return lambda: captured.export_text()


def stats_of(rows) -> ScanStats:
    stats = ScanStats()
    for row in rows:
        stats.add(row)
    return stats


def test_summary_prints_the_threshold_with_4_decimals_and_names_declared_files(summary):
    rows = [Result(f"{i}.png", score=0.9 - i / 10, label="ai" if i < 3 else "real") for i in range(8)]
    rows.append(Result("gen.png", score=0.2, label="real", evidence=["c2pa:trainedAlgorithmicMedia"]))
    print_summary(stats_of(rows), 0.61203, None)
    text = summary()
    assert "score ≥ 0.6120)" in text and threshold_text(0.61203) == "0.6120"
    assert "1 file(s) declare AI generation in their metadata: gen.png" in text
    assert "highest scores: 0.png (0.900), 1.png (0.800), 2.png (0.700), 3.png (0.600), 4.png (0.500)" in text


def test_summary_top_list_never_lists_only_zeros(summary):
    rows = [Result("a.png", score=0.3, label="real")] + [Result(f"z{i}.png", score=1e-5, label="real")
                                                          for i in range(6)]
    print_summary(stats_of(rows), 0.5, None)
    assert "highest scores: a.png (0.300)\n" in summary()  # the 0.000s are left out
    print_summary(stats_of(rows[1:]), 0.5, None)
    text = summary()
    assert "highest score: 0.000 (every image scored below 0.0005)" in text and "z0.png (0.000)" not in text


def test_summary_says_how_many_more_are_flagged_than_it_lists(summary):
    rows = [Result(f"{i}.png", score=0.99 - i / 100, label="ai") for i in range(9)]
    print_summary(stats_of(rows), 0.5, None)
    assert "(0.950); 4 more flagged" in summary()


def test_scan_table_shows_the_evidence_of_a_generator_png(tmp_path, checkpoint, cli):
    (tmp_path / "a1111.png").write_bytes(evidence_files.png_with_text(parameters=evidence_files.A1111))
    (tmp_path / "camera.jpg").write_bytes(evidence_files.camera_jpeg())
    result = cli.invoke(["scan", str(tmp_path), "--weights", str(checkpoint), "--workers", "0",
                         "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1].rsplit("/", 1)[-1]: line for line in result.stdout.splitlines() if ".png" in line
             or ".jpg" in line}
    assert "declared-ai" in lines["a1111.png"] and "declared-ai" not in lines["camera.jpg"]
    assert "declare AI generation in their metadata: " in result.stderr and "a1111.png" in result.stderr
