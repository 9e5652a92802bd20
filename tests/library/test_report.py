import csv
import json
import os

import pytest

from ipdscan.reports.json_report import completed_inputs
from ipdscan.reports.writers import REPORT_FORMATS, open_report
from ipdscan.scanning.result import FIELDS, Result
from ipdscan.text import report_text

HEADER = {"tool": "ipdscan", "model": "test", "threshold": 0.5, "inputs": ["photos", "caf\udce9"]}
SUMMARY = {"end_time": "2024-01-01T00:00:00+00:00", "scanned": 3, "ok": 2, "errors": 1, "flagged": 1}
LATIN1_NAME = "photos/caf\udce9.jpg"  # the file name b"caf\xe9.jpg", which is not UTF-8
LATIN1_WRITTEN = "photos/caf\\xe9.jpg"


def results() -> list[Result]:
    return [
        Result(input="photos/a.jpg", score=0.91234567, label="ai", sha256="ab" * 32, bytes=1744, format="JPEG",
               width=64, height=48, frames=1, exif_make="Canon", exif_model="Canon EOS R5",
               exif_software="Ünïcødé 写真", exif_datetime="2023:05:06 07:08:09"),
        Result.failed("photos/notes.jpg", "unsupported_format", 'not an image, "quoted", with, commas\nand a newline'),
        Result(input=LATIN1_NAME, score=0.0000012, label="real", format="PNG", width=1, height=100000, frames=3),
    ]


@pytest.fixture
def write_report(write_report):
    """conftest's report writer with this file's HEADER and SUMMARY, writing results() unless given ``items``."""
    return lambda path, items=None, **kwargs: write_report(path, results() if items is None else items, HEADER, SUMMARY,
                                                           **kwargs)


def expected_records() -> list[dict]:
    records = [r.to_dict() for r in results()]
    records[2]["input"] = LATIN1_WRITTEN
    return records


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_round_trip(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl")
    records = read_jsonl(path)
    assert [list(r) for r in records] == [FIELDS] * 3  # keys in FIELDS order, no header line
    assert records == expected_records()
    assert records[1]["score"] is None and records[1]["width"] is None


def test_json_round_trip(tmp_path, write_report):
    path = write_report(tmp_path / "report.json")
    report = json.loads(path.read_text(encoding="utf-8"))
    assert list(report) == ["header", "items"]
    assert report["header"] == {**HEADER, "inputs": ["photos", "caf\\xe9"], **SUMMARY}
    assert [list(r) for r in report["items"]] == [FIELDS] * 3
    assert report["items"] == expected_records()


def test_json_without_items_is_valid(tmp_path, write_report):
    report = json.loads(write_report(tmp_path / "report.json", items=[]).read_text(encoding="utf-8"))
    assert report["items"] == [] and report["header"]["scanned"] == 3


def test_csv_round_trip(tmp_path, write_report):
    path = write_report(tmp_path / "report.csv")
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == FIELDS
    parsed = [dict(zip(FIELDS, row)) for row in rows[1:]]
    want = [{k: "" if v is None else str(v) for k, v in r.items()} for r in expected_records()]
    for row in want:
        if row["score"]:
            row["score"] = f"{float(row['score']):.6f}"
    assert parsed == want
    assert parsed[0]["score"] == "0.912346" and parsed[2]["score"] == "0.000001" and parsed[1]["score"] == ""


@pytest.mark.parametrize("name", ["report.csv", "report.json"])
def test_csv_and_json_appear_only_at_close(tmp_path, name):
    path = tmp_path / name
    writer = open_report(path, HEADER)
    for result in results():
        writer.write(result)
    writer.flush()
    assert os.listdir(tmp_path) == []  # rows live in an anonymous temporary file until close
    writer.close(SUMMARY)
    assert sorted(os.listdir(tmp_path)) == [name] + ([name + ".header.json"] if name.endswith(".csv") else [])


def test_csv_replaces_an_existing_report_only_at_close(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("old report\n")
    writer = open_report(path, HEADER)
    writer.write(results()[0])
    assert path.read_text() == "old report\n"
    writer.close(SUMMARY)
    assert path.read_text(encoding="utf-8").startswith(",".join(FIELDS))


def test_jsonl_rows_are_on_disk_after_each_flush(tmp_path):
    path = tmp_path / "report.jsonl"
    writer = open_report(path, HEADER)
    first, second, third = results()
    writer.write(first)
    writer.flush()
    assert [r["input"] for r in read_jsonl(path)] == [first.input]
    writer.write(second)
    writer.write(third)
    writer.flush()
    assert len(read_jsonl(path)) == 3  # readable mid-scan, as after a kill -9


def test_jsonl_without_resume_replaces_the_file(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl")
    write_report(path, items=results()[:1])
    assert len(read_jsonl(path)) == 1


def test_resume_drops_a_partial_line_and_appends(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl", items=results()[:2])
    with open(path, "ab") as file:
        file.write(b'{"input": "photos/cut-short.jpg", "status": "o')  # killed mid-write
    assert completed_inputs(path) == {"photos/a.jpg", "photos/notes.jpg"}
    write_report(path, items=results()[2:], resume=True)
    assert [r["input"] for r in read_jsonl(path)] == ["photos/a.jpg", "photos/notes.jpg", LATIN1_WRITTEN]


def test_resume_drops_a_complete_object_missing_its_newline(tmp_path, write_report):
    # completed_inputs and the truncation must agree, or the image would be skipped yet not reported
    path = write_report(tmp_path / "report.jsonl", items=results()[:1])
    with open(path, "ab") as file:
        file.write(json.dumps(results()[1].to_dict()).encode())
    assert completed_inputs(path) == {"photos/a.jpg"}
    write_report(path, items=[], resume=True)
    assert [r["input"] for r in read_jsonl(path)] == ["photos/a.jpg"]


def test_resume_of_a_file_that_is_one_partial_line(tmp_path, write_report):
    path = tmp_path / "report.jsonl"
    path.write_bytes(b'{"input": "x' * 20000)  # longer than one read block, no newline at all
    assert completed_inputs(path) == set()
    write_report(path, items=results()[:1], resume=True)
    assert [r["input"] for r in read_jsonl(path)] == ["photos/a.jpg"]


def test_resume_creates_a_missing_report(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl", resume=True)
    assert len(read_jsonl(path)) == 3


def test_completed_inputs_match_non_utf8_names_as_found(tmp_path, write_report):
    done = completed_inputs(write_report(tmp_path / "report.jsonl"))
    assert LATIN1_NAME in done  # what the scan will find again, so it is skipped
    assert {"photos/a.jpg", "photos/notes.jpg"} <= done


def test_completed_inputs_refuses_a_file_that_is_not_a_report(tmp_path):
    path = tmp_path / "report.jsonl"
    path.write_text('{"input": "a", "status": "ok", "score": 0.5, "label": "ai"}\nnot json\n{"input": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        completed_inputs(path)


def test_report_text_rule():
    assert report_text("plain/ascii.jpg") == "plain/ascii.jpg"
    assert report_text("Ünïcødé/写真.jpg") == "Ünïcødé/写真.jpg"
    assert report_text("caf\udce9.jpg") == "caf\\xe9.jpg"
    assert report_text("lone\ud800") == "lone\\ud800"  # a surrogate that came from no byte


def test_report_text_round_trips_and_never_writes_two_names_alike():
    """Issue 21, item 7: the byte 0xE9 and a literal backslash-x-e-9 were both written "a\\xe9.jpg"."""
    from ipdscan.text import report_bytes
    names = ["a\udce9.jpg", "a\\xe9.jpg", "a\\\udce9.jpg", "a\\\\xe9.jpg", "a\\\\\udce9", "dir\\file.jpg",
             "end\\", "\\\\", "x\\xZZ", "Ünï\\x41", "plain.jpg"]
    written = [report_text(name) for name in names]
    assert len(set(written)) == len(names)
    assert [report_bytes(text) for text in written] == names
    assert written[:2] == ["a\\xe9.jpg", "a\\\\xe9.jpg"]
    assert report_text("dir\\file.jpg") == "dir\\file.jpg"  # a backslash nothing could misread stays single


def test_extension_is_case_insensitive(tmp_path, write_report):
    for name in ("R.CSV", "R.JsonL", "R.JSON"):
        assert write_report(tmp_path / name).exists()
    assert len(read_jsonl(tmp_path / "R.JsonL")) == 3


def test_unknown_extension_is_refused(tmp_path):
    assert REPORT_FORMATS == (".csv", ".jsonl", ".json", ".sarif", ".html")
    with pytest.raises(ValueError, match=r"unsupported report format '\.xyz': use \.csv, \.jsonl, \.json, \.sarif, \.html"):
        open_report(tmp_path / "report.xyz", HEADER)
    with pytest.raises(ValueError, match="unsupported report format 'report'"):
        open_report(tmp_path / "report", HEADER)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["report.csv", "report.json"])
def test_resume_needs_jsonl(tmp_path, name):
    with pytest.raises(ValueError, match="--resume needs --out FILE.jsonl"):
        open_report(tmp_path / name, HEADER, resume=True)


@pytest.mark.parametrize("name", ["report.csv", "report.jsonl", "report.json"])
def test_missing_directory_is_a_clear_error(tmp_path, name):
    path = tmp_path / "missing" / name
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        open_report(path, HEADER)
    assert str(path) in str(info.value)


def test_jsonl_flush_makes_rows_durable(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    writer = open_report(tmp_path / "report.jsonl", HEADER)
    synced.clear()  # the header file beside the report, made durable when it is opened
    writer.write(results()[0])
    writer.flush()
    assert len(synced) == 1
    writer.close(SUMMARY)


@pytest.mark.parametrize("name", ["report.csv", "report.json"])
def test_a_failed_close_leaves_neither_report_nor_temporary_file(tmp_path, monkeypatch, name):
    def disk_full(*args):
        raise OSError(28, "No space left on device")
    writer = open_report(tmp_path / name, HEADER)
    writer.write(results()[0])
    monkeypatch.setattr("ipdscan.reports.publish.shutil.copyfileobj", disk_full)
    with pytest.raises(OSError, match="No space"):
        writer.close(SUMMARY)
    assert os.listdir(tmp_path) == []


def test_resume_refuses_a_report_scanned_with_other_settings(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl")
    with pytest.raises(ValueError, match="threshold"):
        open_report(path, {**HEADER, "threshold": 0.9}, resume=True)
    open_report(path, {**HEADER, "start_time": "later"}, resume=True).close(SUMMARY)  # same scan, rerun


def test_with_retry_errors_inputs_whose_last_row_is_an_error_are_not_done(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl")  # a.jpg ok, notes.jpg an error, the Latin-1 name ok
    assert "photos/notes.jpg" in completed_inputs(path)
    assert completed_inputs(path, retry_errors=True) == {"photos/a.jpg", LATIN1_NAME}  # as the scan finds it
    with open(path, "a") as file:  # a retry that a crash kept from tidying up: the later row counts
        file.write(json.dumps(Result(input="photos/notes.jpg", score=0.5, label="ai").to_dict()) + "\n")
    assert "photos/notes.jpg" in completed_inputs(path, retry_errors=True)


def test_a_retried_row_takes_the_place_of_the_error_row(tmp_path, write_report):
    path = write_report(tmp_path / "report.jsonl")
    retried = Result(input="photos/notes.jpg", score=0.25, label="real")
    write_report(path, items=[retried, Result(input="photos/new.jpg", score=0.5, label="ai")], resume=True,
                 retry_errors=True)
    rows = read_jsonl(path)
    assert [r["input"] for r in rows] == ["photos/a.jpg", "photos/notes.jpg", LATIN1_WRITTEN, "photos/new.jpg"]
    assert rows[1]["status"] == "ok" and rows[1]["score"] == 0.25
    assert sorted(os.listdir(tmp_path)) == ["report.jsonl", "report.jsonl.header.json"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted_and_json_stays_exact(tmp_path, write_report):
    """OWASP CSV injection: text from EXIF or a URL list that starts with = + - @ tab or CR gets a leading '."""
    hostile = Result(input="=HYPERLINK(\"http://evil.example\",\"x\")", score=0.25, label="real", bytes=10, width=3,
                     height=4, frames=1, exif_make="+cmd|' /C calc'!A0", exif_model="-2+3", exif_software="@SUM(1)",
                     exif_datetime="\t2023", evidence=["exif:software:x"])
    failed = Result.failed("\rline.jpg", "not_found", "-no such file")
    write_report(tmp_path / "r.csv", [hostile, failed])
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        first, second = list(csv.DictReader(f))
    assert first["input"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert (first["exif_make"], first["exif_model"], first["exif_software"], first["exif_datetime"]) == \
        ("'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(1)", "'\t2023")
    assert (first["score"], first["bytes"], first["width"], first["evidence"]) == ("0.250000", "10", "3", "exif:software:x")
    assert (second["input"], second["error"], second["error_code"]) == ("'\rline.jpg", "'-no such file", "not_found")
    assert read_jsonl(write_report(tmp_path / "r.jsonl", [hostile, failed])) == [hostile.to_dict(), failed.to_dict()]


def test_csv_has_its_scan_header_beside_it_and_reads_back_as_the_rows_written(tmp_path, write_report):
    from ipdscan.reports.csv_report import csv_records
    from ipdscan.reports.header_file import header_path, read_header
    formula = Result(input="=HYPERLINK(\"x\").png", score=0.5, label="ai", exif_software="+1", width=3, height=4)
    path = write_report(tmp_path / "report.csv", results() + [formula])
    header = read_header(path)
    assert header_path(path).name == "report.csv.header.json"
    assert header["threshold"] == 0.5 and header["model"] == "test" and header["end_time"] == SUMMARY["end_time"]
    records = [record for _, record in csv_records(path)]
    want = expected_records() + [formula.to_dict()]
    for record, expected in zip(records, want):
        if expected["score"] is not None:  # the CSV keeps 6 decimals
            expected["score"] = round(expected["score"], 6)
        assert record == expected
    assert [number for number, _ in csv_records(path)][:2] == [2, 4]  # the error message spans two lines


def test_csv_formula_guard_is_reversible_and_merge_and_report_round_trip_it(tmp_path, write_report, cli):
    """Issue 33, item 9: "'=cmd.jpg" and "=cmd.jpg" were both written '=cmd.jpg, and merge refused the duplicate."""
    from ipdscan.reports.csv_report import csv_records
    names = ["'=cmd.jpg", "=cmd.jpg", "'plain.jpg", "''.jpg", "+1.jpg", "plain.jpg", "'"]
    path = write_report(tmp_path / "r.csv", [Result(input=name, score=0.25, label="real") for name in names])
    with open(path, newline="", encoding="utf-8") as file:
        cells = [row["input"] for row in csv.DictReader(file)]
    assert cells == ["''=cmd.jpg", "'=cmd.jpg", "''plain.jpg", "'''.jpg", "'+1.jpg", "plain.jpg", "''"]
    assert [record["input"] for _, record in csv_records(path)] == names
    for command, out in (("merge", "all.jsonl"), ("report", "copy.csv")):
        result = cli(command, path, "--out", tmp_path / out)
        assert result.exit_code == 0, result.output
    assert [json.loads(line)["input"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == names
    assert [record["input"] for _, record in csv_records(tmp_path / "copy.csv")] == names


def test_csv_cells_write_control_characters_as_escapes(tmp_path, write_report):
    """Issue 21: an ESC or BEL in a file name or EXIF text reached the CSV raw, and the terminal of whoever ran cat."""
    from ipdscan.text import report_bytes
    name = "photos/clear\x1b[2J\x07.png"
    row = Result(input=name, score=0.5, label="ai", exif_make="Ca\x00non\x7f", exif_model="back\\\x1bslash")
    write_report(tmp_path / "r.csv", [row])
    raw = (tmp_path / "r.csv").read_bytes()
    assert not set(raw) & (set(range(0x20)) - {0x0a, 0x0d} | {0x7f})
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        (written,) = csv.DictReader(f)
    assert (written["input"], written["exif_make"]) == ("photos/clear\\x1b[2J\\x07.png", "Ca\\x00non\\x7f")
    assert [report_bytes(written[key]) for key in ("input", "exif_make", "exif_model")] == \
        [name, "Ca\x00non\x7f", "back\\\x1bslash"]
    from ipdscan.reports.merge import read_part  # merge and report read the CSV back as the scan had it
    (back,) = read_part(tmp_path / "r.csv")
    assert (back.input, back.exif_make, back.exif_model) == (name, "Ca\x00non\x7f", "back\\\x1bslash")
