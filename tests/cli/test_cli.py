"""End-to-end CLI tests in temp dirs: stdout, stderr, exit codes, report files, failure paths."""
import csv
import json
import os
from pathlib import Path

import pytest

from ipdscan.scanning.result import FIELDS

from checkpoints import make_checkpoint
from http_server import LocalServer
from images import encoded, make_corpus, make_image, natural

KINDS = ["jpeg", "png", "webp", "gray", "rgba", "cmyk_jpeg", "png16", "corrupt_jpeg", "empty", "text_as_jpg"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return folder, make_corpus(folder, KINDS)


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == FIELDS
        return list(reader)


@pytest.mark.slow
def test_every_file_gets_exactly_one_row_with_the_right_status(corpus, checkpoint, tmp_path, cli):
    folder, expected = corpus
    out = tmp_path / "report.csv"
    result = cli.scan(folder, "--weights", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert sorted(Path(r["input"]).name for r in rows) == sorted(expected)
    for row in rows:
        want = expected[Path(row["input"]).name]
        if want.code == "ok":
            assert row["status"] == "ok" and row["error_code"] == "", row
            assert 0.0 <= float(row["score"]) <= 1.0 and row["label"] in ("ai", "real")
            assert (int(row["width"]), int(row["height"])) == want.size and row["format"] == want.format
            assert len(row["sha256"]) == 64 and int(row["bytes"]) > 0
        else:
            assert row["status"] == "error" and row["error_code"] == want.code and row["error"], row
            assert row["score"] == "" and row["label"] == ""
    assert "scanned 10" in result.stderr and "3 errors" in result.stderr
    assert result.stdout == ""  # the report went to the file; stdout stays clean


@pytest.mark.slow
def test_table_on_stdout_without_out(corpus, checkpoint, cli):
    folder, _ = corpus
    result = cli.scan(folder, "--weights", checkpoint, "--quiet")
    assert result.exit_code == 0
    assert "cmyk.jpg" in result.stdout and "empty_file" in result.stdout
    # --quiet: no progress, no summary; only a line for each of the 3 inputs that could not be scanned
    assert [line.split(": ")[0] for line in result.stderr.splitlines()] == ["ipdscan"] * 3


@pytest.mark.slow
def test_jsonl_and_json_reports_match_the_schema(corpus, checkpoint, tmp_path, cli):
    folder, expected = corpus
    assert cli.scan(folder, "--weights", checkpoint, "--out", tmp_path / "r.jsonl", "-q").exit_code == 0
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected) and all(list(obj) == FIELDS for obj in lines)
    assert cli.scan(folder, "--weights", checkpoint, "--out", tmp_path / "r.json", "-q", "--threshold", "0.3").exit_code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    header = doc["header"]
    assert header["weights_sha256"] == Path(f"{checkpoint}.sha256").read_text().split()[0]
    assert header["threshold"] == 0.3 and header["variant"] == "layer2" and header["device"] == "cpu"
    assert header["scanned"] == len(expected) and header["errors"] == 3
    assert [item["input"] for item in doc["items"]] == [obj["input"] for obj in lines]
    for item in doc["items"]:
        if item["status"] == "ok":
            assert item["label"] == ("ai" if item["score"] >= 0.3 else "real")


@pytest.mark.slow
def test_fail_on_flips_the_exit_code(corpus, checkpoint, tmp_path, cli):
    folder, _ = corpus
    out = tmp_path / "r.jsonl"  # full-precision scores (the CSV rounds to 6 decimals)
    assert cli.scan(folder, "--weights", checkpoint, "--out", out, "-q").exit_code == 0
    top = max(json.loads(line)["score"] or 0 for line in out.read_text().splitlines())
    assert cli.scan(folder, "--weights", checkpoint, "-q", "--fail-on", top).exit_code == 1
    assert cli.scan(folder, "--weights", checkpoint, "-q", "--fail-on", min(1.0, top + 1e-4)).exit_code == 0


def test_exif_columns(tmp_path, checkpoint, cli):
    make_image(tmp_path / "camera.jpg", "jpeg")
    out = tmp_path / "r.csv"
    assert cli.scan(tmp_path / "camera.jpg", "--weights", checkpoint, "--out", out, "-q").exit_code == 0
    (row,) = read_csv(out)
    assert (row["exif_make"], row["exif_model"]) == ("Canon", "Canon EOS R5")
    assert row["exif_datetime"] == "2023:05:06 07:08:09"


def test_missing_inputs_are_rows_not_crashes(tmp_path, checkpoint, cli):
    make_image(tmp_path / "a.png", "png")
    out = tmp_path / "r.csv"
    result = cli.scan(tmp_path / "a.png", tmp_path / "missing.jpg", "--weights", checkpoint, "--out", out)
    assert result.exit_code == 2  # as grep: a named path that does not exist is an error, after the scan
    codes = {Path(r["input"]).name: r["error_code"] for r in read_csv(out)}
    assert codes == {"a.png": "", "missing.jpg": "not_found"}


def test_stdin_lists_paths(tmp_path, checkpoint, cli):
    for name in ("a.png", "b.png"):
        make_image(tmp_path / name, "png")
    out = tmp_path / "r.jsonl"
    result = cli.scan("-", "--weights", checkpoint, "--out", out, "-q",
                      input=f"{tmp_path / 'a.png'}\n{tmp_path / 'b.png'}\n")
    assert result.exit_code == 0, result.output
    assert [Path(json.loads(line)["input"]).name for line in out.read_text().splitlines()] == ["a.png", "b.png"]


@pytest.mark.slow
def test_url_list_against_a_local_server(tmp_path, checkpoint, cli):
    with LocalServer() as server:
        good = server.add("a.png", encoded(natural(), "PNG"))
        urls = [good, server.url("/404"), server.url("/slow?s=3"), server.url("/big?declare=999999999")]
        listing = tmp_path / "urls.txt"
        listing.write_text("# scraped\n" + "\n".join(urls) + "\n\n")
        out = tmp_path / "r.csv"
        result = cli.scan(listing, "--weights", checkpoint, "--out", out, "-q", "--allow-private-urls",
                          "--timeout", "0.5", "--max-mb", "1")
        assert result.exit_code == 0, result.output
        rows = read_csv(out)
    assert [r["input"] for r in rows] == urls
    assert [r["error_code"] for r in rows] == ["", "http_404", "timeout", "too_large"]
    assert rows[0]["format"] == "PNG" and rows[0]["score"] != ""


def test_loopback_urls_are_refused_without_the_flag(tmp_path, checkpoint, cli):
    with LocalServer() as server:
        url = server.add("a.png", encoded(natural(), "PNG"))
        out = tmp_path / "r.csv"
        assert cli.scan(url, "--weights", checkpoint, "--out", out, "-q").exit_code == 2  # its only input failed
        assert read_csv(out)[0]["error_code"] == "blocked_address"
        assert server.requests == []


@pytest.mark.parametrize("args,message", [
    (["--weights", "nope.pt"], "weights file not found"),
    (["--out", "report.xlsx"], "unsupported report format"),
    (["--out", "no/such/dir/r.csv"], "does not exist"),
    (["--resume", "--out", "r.csv"], "--resume needs --out FILE.jsonl"),
    (["--shard", "3/2"], "--shard"),
    (["--device", "cuda:7"], "device"),
    (["--variant", "layer4"], "does not match the weights"),
    (["--decode", "gpu"], "Invalid value for '--decode'"),  # a choice: click lists them
    (["--precision", "fp16"], "Invalid value for '--precision'"),
    (["--format", "xml"], "Invalid value for '--format'"),
    (["--out", "-"], "--out - writes the report to stdout: choose its format with --format"),
    (["--format", "table", "--out", "r.csv"], "--format table prints to the terminal"),
])
def test_usage_and_fatal_errors_exit_2_with_one_line(tmp_path, checkpoint, monkeypatch, args, message, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a.png", "png")
    weights = [] if "--weights" in args else ["--weights", str(checkpoint)]
    result = cli.scan("a.png", *weights, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_tampered_weights_exit_2(tmp_path, cli):
    weights = make_checkpoint(tmp_path / "w.pt")
    data = bytearray(weights.read_bytes())
    data[-5000] ^= 0xFF
    weights.write_bytes(bytes(data))
    make_image(tmp_path / "a.png", "png")
    result = cli.scan(tmp_path / "a.png", "--weights", weights)
    assert result.exit_code == 2 and "w.pt" in result.stderr


@pytest.mark.slow
def test_decode_and_precision_choices_give_the_same_rows_on_the_cpu(tmp_path, checkpoint, monkeypatch, cli, photo):
    monkeypatch.chdir(tmp_path)
    for i in range(3):
        photo(f"{i}.jpg", 260, 240, seed=i)
    rows = {}
    for decode in ("workers", "device"):
        result = cli.scan(".", "--weights", str(checkpoint), "--decode", decode, "--precision", "fp32",
                          "--out", f"{decode}.jsonl", "-q")
        assert result.exit_code == 0, result.stderr
        rows[decode] = [json.loads(line) for line in Path(f"{decode}.jsonl").read_text().splitlines()]
    assert len(rows["device"]) == 3 and rows["device"] == rows["workers"]


def test_version_and_help(cli):
    result = cli.invoke(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("ipdscan ")
    result = cli.invoke(["scan", "--help"])
    assert result.exit_code == 0 and "--fail-on" in result.stdout and "ipdscan scan ./photos" in result.stdout


@pytest.mark.slow
def test_subprocess_scan_with_workers_and_plain_progress(tmp_path, checkpoint, run_cli):
    for i in range(5):
        make_image(tmp_path / f"{i}.png", "png")
    out = tmp_path / "r.jsonl"
    proc = run_cli("scan", tmp_path, "--weights", checkpoint, "--out", out, "--workers", "2", "--batch-size", "2",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = [Path(json.loads(line)["input"]).name for line in out.read_text().splitlines()]
    assert names == [f"{i}.png" for i in range(5)]  # input order, across two workers
    assert "scanned 5" in proc.stderr and "\x1b[" not in proc.stderr  # no terminal codes in a pipe


@pytest.mark.slow
def test_subprocess_usage_error_is_exit_2(tmp_path, run_cli):
    proc = run_cli("scan", "--batch-size", "0", "x.png", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_hostile_corpus_one_row_each_and_no_traceback(tmp_path, checkpoint, run_cli):
    from images import KINDS as ALL_KINDS
    folder = tmp_path / "hostile"
    folder.mkdir()
    expected = make_corpus(folder, ALL_KINDS)
    os.mkfifo(folder / "pipe.jpg")  # never opened: a reader would block here forever
    out = tmp_path / "r.csv"
    proc = run_cli("scan", folder, "--weights", checkpoint, "--out", out, "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    codes = {Path(r["input"]).name: r["error_code"] or "ok" for r in read_csv(out)}
    assert codes == {**{name: e.code for name, e in expected.items()}, "pipe.jpg": "not_a_file"}


@pytest.mark.slow
def test_evidence_columns_sarif_and_fail_on_evidence(tmp_path, checkpoint, monkeypatch, cli):
    from evidence_files import png_with_text
    monkeypatch.chdir(tmp_path)  # outside a repository, SARIF paths start at the current directory
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "sd.png").write_bytes(png_with_text(parameters="a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7"))
    make_image(folder / "camera.jpg", "jpeg")
    out = tmp_path / "r.csv"
    assert cli.scan(folder, "--weights", checkpoint, "--out", out, "-q").exit_code == 0
    rows = {Path(r["input"]).name: r for r in read_csv(out)}
    assert "png:parameters" in rows["sd.png"]["evidence"] and json.loads(rows["sd.png"]["evidence_detail"])
    assert rows["camera.jpg"]["evidence"] == "" and rows["camera.jpg"]["evidence_detail"] == ""
    result = cli.scan(folder, "--weights", checkpoint, "--out", tmp_path / "r.sarif", "--fail-on-evidence")
    assert result.exit_code == 1 and "declare AI generation" in result.stderr
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
             for r in sarif["runs"][0]["results"]}
    assert ("ipdscan/provenance-ai", "assets/sd.png") in found  # relative to the current directory
    assert cli.scan(folder / "camera.jpg", "--weights", checkpoint, "-q", "--fail-on-evidence").exit_code == 0


def test_heic_and_avif_round_trip_through_a_scan(tmp_path, checkpoint, cli):
    make_image(tmp_path / "phone.heic", "heic")
    make_image(tmp_path / "picture.avif", "avif")
    out = tmp_path / "r.csv"
    assert cli.scan(tmp_path, "--weights", checkpoint, "--out", out, "-q").exit_code == 0
    rows = {Path(r["input"]).name: r for r in read_csv(out)}
    assert rows["phone.heic"]["format"] == "HEIF" and rows["picture.avif"]["format"] == "AVIF"
    assert all(r["status"] == "ok" and r["score"] for r in rows.values())


@pytest.mark.parametrize("value", ["inf", "1e300", "nan", "0"])
def test_max_mb_must_be_a_finite_positive_size(tmp_path, checkpoint, value, cli):
    make_image(tmp_path / "a.png", "png")
    result = cli.scan(tmp_path / "a.png", "--weights", checkpoint, "--max-mb", value)
    assert result.exit_code == 2
    assert "--max-mb" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_unwritable_report_folder_names_the_report_not_a_temporary_file(tmp_path, checkpoint, monkeypatch, cli):
    import tempfile

    def refused(*args, dir=None, **kwargs):  # what a folder without write permission gives (tests may run as root)
        raise PermissionError(13, "Permission denied", os.path.join(dir, "tmpk2j4x_9q"))

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    make_image(tmp_path / "a.png", "png")
    for name in ("r.csv", "r.json", "r.sarif"):
        result = cli.scan(tmp_path / "a.png", "--weights", checkpoint, "--out", tmp_path / name)
        assert result.exit_code == 2, result.output
        assert str(tmp_path / name) in result.stderr and "tmp" + "k2j4x" not in result.stderr
        assert "Permission denied" in result.stderr and "Traceback" not in result.stderr


def test_a_report_folder_without_write_permission_is_one_line_naming_the_report(tmp_path, checkpoint, monkeypatch, cli):
    """The scan's first write there is its lock file (<report>.lock): the error names the report, as every other."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = os.open

    def refused(path, *args, **kwargs):  # what a folder without write permission gives (tests may run as root)
        if os.path.dirname(os.fspath(path)) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    make_image(tmp_path / "a.png", "png")
    for name in ("r.jsonl", "r.csv"):
        result = cli.scan(tmp_path / "a.png", "--weights", checkpoint, "--out", locked / name)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [f"error: cannot write the report {locked / name}: Permission denied"]


@pytest.mark.timeout(60)
def test_explain_refuses_a_fifo_instead_of_waiting_on_it(tmp_path, checkpoint, cli):
    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    result = cli.invoke(["explain", str(fifo), "--out", str(tmp_path / "heat.png"), "--weights",
                         str(checkpoint)])
    assert result.exit_code == 2
    assert "not a regular file" in result.stderr and str(fifo) in result.stderr


def test_sarif_scan_of_a_non_utf8_file_name(tmp_path, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    make_image(folder / os.fsdecode(b"\xff.png"), "png")
    out = tmp_path / "r.sarif"
    result = cli.scan(folder, "--weights", checkpoint, "--out", out, "--threshold", "0", "-q")
    assert result.exit_code == 0, result.output
    (finding,) = json.loads(out.read_bytes().decode("utf-8"))["runs"][0]["results"]
    assert finding["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "photos/%FF.png"


@pytest.mark.slow
def test_url_credentials_are_used_but_never_reported(tmp_path, checkpoint, cli):
    with LocalServer() as server:
        good = server.add("a.png", encoded(natural(), "PNG")).replace("http://", "http://alice:s3cret@")
        missing = server.url("/404").replace("http://", "http://alice:s3cret@")
        listing = tmp_path / "urls.txt"
        listing.write_text(f"{missing}\n")
        outputs = []
        for name in ("r.csv", "r.json", "r.jsonl", "r.sarif", None):
            out = ["--out", tmp_path / name] if name else []
            result = cli.scan(good, listing, "--weights", checkpoint, "--allow-private-urls", "--threshold", "0", *out)
            assert result.exit_code == 0, result.output
            outputs.append(result.stdout + result.stderr)
            if name:
                outputs.append((tmp_path / name).read_text())
        outputs.append((tmp_path / "r.jsonl.header.json").read_text())
        assert all(request["authorization"] for request in server.requests)  # the credentials were used
    for text in outputs:
        assert "s3cret" not in text and "alice" not in text
    assert "http://***@127.0.0.1" in outputs[1]  # the csv
    rows = read_csv(tmp_path / "r.csv")
    assert [row["error_code"] for row in rows] == ["", "http_404"]


@pytest.mark.slow
def test_resume_with_retry_errors_rescans_error_rows_in_place(tmp_path, checkpoint, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    make_image(photos / "a.png", "png")
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short by a failed copy")
    make_image(photos / "c.png", "png")
    out = tmp_path / "r.jsonl"
    def rows():
        return [json.loads(line) for line in out.read_text().splitlines()]
    assert cli.scan(photos, "--weights", checkpoint, "--out", out, "-q").exit_code == 0
    assert [r["status"] for r in rows()] == ["ok", "error", "ok"]
    make_image(photos / "b.png", "png")  # the copy is redone
    assert cli.scan(photos, "--weights", checkpoint, "--out", out, "-q", "--resume").exit_code == 0
    assert [r["status"] for r in rows()] == ["ok", "error", "ok"]  # --resume alone skips every row
    assert cli.scan(photos, "--weights", checkpoint, "--out", out, "-q", "--resume", "--retry-errors").exit_code == 0
    assert [(Path(r["input"]).name, r["status"]) for r in rows()] == [("a.png", "ok"), ("b.png", "ok"), ("c.png", "ok")]
    result = cli.scan(photos, "--weights", checkpoint, "--out", out, "--retry-errors")
    assert result.exit_code == 2 and "--resume" in result.stderr
