"""ipdscan.reports.merge on hand-made parts: row validation, parts that do not belong together, header, order."""
import json

import pytest

from ipdscan.reports.header_file import header_path
from ipdscan.reports.merge import MergeError, merge_reports
from ipdscan.reports.writers import open_report
from ipdscan.scanning.result import Result

SCAN = {"tool": "ipdscan", "version": "1.0", "model": "ipdnet-test", "variant": "layer2", "weights_sha256": "ab" * 32,
        "threshold": 0.3, "device": "cpu", "start_time": "2024-01-02T03:04:05+00:00", "inputs": ["photos"]}


def part(path, inputs, header=SCAN, score=0.35):
    writer = open_report(path, header)
    for name in inputs:
        writer.write(Result(input=name, score=score, label="ai" if score >= header["threshold"] else "real"))
    writer.close({})
    return path


def test_each_part_keeps_its_scan_header_beside_it(tmp_path):
    path = part(tmp_path / "p1.jsonl", ["a.png"])
    assert json.loads(header_path(path).read_text())["weights_sha256"] == "ab" * 32
    assert [json.loads(line)["input"] for line in path.read_text().splitlines()] == ["a.png"]  # rows only


@pytest.mark.parametrize("line,problem", [
    ("{}", "input"),
    ('{"input": null}', "input"),
    ('{"input": 7, "status": "ok"}', "input"),
    ('{"input": "x.png", "status": "maybe", "score": 0.5, "label": "ai"}', "status"),
    ('{"input": "x.png", "status": "ok"}', "score"),
    ('{"input": "x.png", "status": "ok", "score": "high", "label": "ai"}', "score"),
    ('{"input": "x.png", "status": "ok", "score": 0.5, "label": "maybe"}', "label"),
    ('{"input": "x.png", "status": "error"}', "error_code"),
    ('{"input": "x.png", "status": "ok", "score": 0.9, "label": "real"}', "threshold"),  # SCAN's is 0.3
    ('{"input": "x.png", "status": "ok", "score": 0.1, "label": "ai"}', "threshold"),
    ('{"input": "x.png", "status": "ok", "score": 0.5, "label": "ai", "width": "wide"}', "width"),
    ("[1, 2]", "object"),
    ('"x.png"', "object"),
])
def test_a_line_that_is_not_a_report_row_is_refused_with_file_and_line(tmp_path, line, problem):
    path = part(tmp_path / "p1.jsonl", ["a.png"])
    with open(path, "a") as file:
        file.write(line + "\n")
    with pytest.raises(MergeError, match=problem) as refused:
        merge_reports([path], tmp_path / "all.csv", {"tool": "ipdscan"})
    assert f"{path}, line 2" in str(refused.value)
    assert not (tmp_path / "all.csv").exists()


@pytest.mark.parametrize("field,value", [("weights_sha256", "cd" * 32), ("threshold", 0.5), ("model", "other"),
                                         ("variant", "layer3")])
def test_parts_from_different_scans_are_refused(tmp_path, field, value):
    first = part(tmp_path / "p1.jsonl", ["a.png"])
    second = part(tmp_path / "p2.jsonl", ["b.png"], header={**SCAN, field: value})
    with pytest.raises(MergeError, match=field) as refused:
        merge_reports([first, second], tmp_path / "all.csv", {"tool": "ipdscan"})
    assert "p2.jsonl" in str(refused.value)


def test_a_part_without_its_header_cannot_be_checked_against_the_others(tmp_path):
    first = part(tmp_path / "p1.jsonl", ["a.png"])
    second = part(tmp_path / "p2.jsonl", ["b.png"])
    header_path(second).unlink()
    with pytest.raises(MergeError, match="p2.jsonl.header.json"):
        merge_reports([first, second], tmp_path / "all.csv", {"tool": "ipdscan"})


def test_merged_header_carries_the_scan_identity_and_sarif_uses_its_threshold(tmp_path, cli):
    parts = [part(tmp_path / "p1.jsonl", ["a.png"]), part(tmp_path / "p2.jsonl", ["b.png"])]
    result = cli.invoke(["merge", *map(str, parts), "--out", str(tmp_path / "all.json")])
    assert result.exit_code == 0, result.output
    header = json.loads((tmp_path / "all.json").read_text())["header"]
    assert {key: header[key] for key in ("model", "variant", "weights_sha256", "threshold")} == {
        key: SCAN[key] for key in ("model", "variant", "weights_sha256", "threshold")}
    result = cli.invoke(["merge", *map(str, parts), "--out", str(tmp_path / "all.sarif")])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "all.sarif").read_text())["runs"][0]
    assert len(run["results"]) == 2  # scored 0.35, flagged at the parts' threshold 0.3 (the default is 0.5)


def test_with_expect_rows_come_in_the_scan_s_input_order(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [str(photos / f"{i}.png") for i in range(6)]
    for name in names:
        open(name, "wb").write(b"\x89PNG\r\n\x1a\n")
    parts = [part(tmp_path / "p1.jsonl", names[1::2]), part(tmp_path / "p2.jsonl", names[0::2])]
    merge_reports(parts, tmp_path / "all.jsonl", {"tool": "ipdscan"}, expected=names)
    assert [json.loads(line)["input"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == names


def test_a_header_file_given_as_a_part_is_named(tmp_path, cli):
    first = part(tmp_path / "p1.jsonl", ["a.png"])
    result = cli.invoke(["merge", str(first), str(header_path(first)), "--out", str(tmp_path / "all.csv")])
    assert result.exit_code == 2 and "header" in result.stderr and "Traceback" not in result.stderr


def test_csv_parts_merge_with_their_header_files(tmp_path):
    one, two = part(tmp_path / "p1.csv", ["a.png", "b.png"]), part(tmp_path / "p2.jsonl", ["c.png"])
    stats = merge_reports([one, two], tmp_path / "all.jsonl", {"tool": "ipdscan"})
    assert stats.rows == 3
    assert json.loads(header_path(tmp_path / "all.jsonl").read_text())["threshold"] == 0.3
    other = part(tmp_path / "p3.csv", ["d.png"], header={**SCAN, "threshold": 0.9})
    with pytest.raises(MergeError, match="threshold"):
        merge_reports([one, other], tmp_path / "bad.jsonl", {})
    with pytest.raises(MergeError, match="read from .jsonl or .csv"):
        merge_reports([part(tmp_path / "p.json", ["e.png"])], tmp_path / "x.csv", {})


def test_a_csv_score_rounded_onto_the_threshold_keeps_its_label(tmp_path):
    """A .csv keeps 6 decimals: 0.2999996, labelled real at threshold 0.3, reads back as 0.300000 and is still a row."""
    csv_part = part(tmp_path / "p.csv", ["a.png"], score=0.2999996)
    assert merge_reports([csv_part], tmp_path / "all.jsonl", {}).rows == 1
    assert json.loads((tmp_path / "all.jsonl").read_text())["label"] == "real"


@pytest.mark.parametrize("target", ["/proc/self/environ", "outside"])
def test_a_header_file_that_links_out_of_its_folder_is_refused_unread(tmp_path, target):
    (tmp_path / "parts").mkdir()
    (tmp_path / "outside").write_text(json.dumps(SCAN))
    first, second = part(tmp_path / "parts" / "p1.jsonl", ["a.png"]), part(tmp_path / "parts" / "p2.jsonl", ["b.png"])
    header_path(second).unlink()
    header_path(second).symlink_to(target if target.startswith("/") else tmp_path / target)
    with pytest.raises((MergeError, ValueError)) as raised:
        merge_reports([first, second], tmp_path / "all.jsonl", {"tool": "ipdscan"})
    assert f"{header_path(second)}: the report header is" in str(raised.value) and "PATH=" not in str(raised.value)
