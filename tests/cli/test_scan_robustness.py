"""The scan command under hostile names, CI exit-code expectations, signals and concurrent runs (issue 12)."""
import csv
import fcntl
import io
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ipdscan.cli.commands import main
from ipdscan.cli.console import printable

from images import make_image


def jsonl_inputs(path):
    return [json.loads(line)["input"] for line in Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_stdin_paths_with_worker_processes(tmp_path, checkpoint, run_cli):
    """The README's `find ... | ipdscan scan - --out x.json`: workers are separate processes, stdin is the parent's."""
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        make_image(tmp_path / name, "png")
    proc = run_cli("scan", "-", "--weights", checkpoint, "--out", "r.json", "--workers", "1", "--batch-size", "2",
                   cwd=tmp_path, stdin="".join(f"{name}\n" for name in names))
    assert proc.returncode == 0, proc.stderr
    assert [item["input"] for item in json.loads((tmp_path / "r.json").read_text())["items"]] == names


@pytest.mark.parametrize("kind", ["pipe", "in-memory"])
def test_stdin_spool_copies_lines_as_bytes_and_ends_at_the_end_mark(kind):
    from ipdscan.scanning.stdin_spool import StdinSpool
    data = b"caf\xe9.jpg\r\n.\n+x\n\nlast-without-newline"
    if kind == "pipe":
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        stdin = os.fdopen(read_end, "rb")
    else:
        stdin = io.BytesIO(data)
    spool = StdinSpool(stdin)
    try:
        assert list(spool.lines) == ["caf\udce9.jpg", ".", "+x", "", "last-without-newline"]
    finally:
        spool.close()
        stdin.close()
    assert not os.path.exists(spool.lines.path)


@pytest.mark.parametrize("null", [False, True])
def test_stdin_spool_carries_names_with_newlines_and_backslashes(null):
    from ipdscan.scanning.stdin_spool import StdinSpool
    names = [b"a\\n.jpg", b"back\\\\slash.png", b"x\xe9.png"] + ([b"new\nline.png", b"cr\r"] if null else [])
    spool = StdinSpool(io.BytesIO(b"".join(name + (b"\0" if null else b"\n") for name in names)), null)
    try:
        assert list(spool.lines) == [os.fsdecode(name) for name in names]
    finally:
        spool.close()


def test_stdin_names_cuts_an_endless_line_and_reads_the_next():
    """Issue 21, item 3: a line without a newline was joined to each new chunk (quadratic) and held whole."""
    from ipdscan.scanning.sources import STDIN_LINE_BYTES, stdin_names
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end, "rb")

    def feed():
        for _ in range(64):  # 16 MB in 256 KB writes, no newline until the end
            os.write(write_end, b"x" * (1 << 18))
        os.write(write_end, b"\nnext.jpg\n")
        os.close(write_end)
    writer = threading.Thread(target=feed)
    writer.start()
    names = list(stdin_names(stdin))
    writer.join()
    stdin.close()
    assert [len(name) for name in names] == [STDIN_LINE_BYTES, 8] and names[1] == b"next.jpg"


@pytest.fixture
def bracketed(tmp_path):
    """Files whose names rich would read as markup: a closing tag that matches nothing, and a style tag."""
    (tmp_path / "x[").mkdir()
    make_image(tmp_path / "x[" / "oops].png", "png")
    make_image(tmp_path / "a[bold]b.png", "png")
    (tmp_path / "urls.txt").write_text("http://[/red]bad\n")
    return tmp_path


def test_brackets_in_names_urls_and_out_are_shown_literally(bracketed, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(bracketed)
    result = cli.scan(".", "urls.txt", "--weights", checkpoint)
    assert result.exit_code == 0, result.output
    assert "x[/oops].png" in result.stdout and "a[bold]b.png" in result.stdout
    assert "http://[/red]bad" in result.stdout and "Traceback" not in result.output
    (bracketed / "r[").mkdir()
    result = cli.scan(".", "--weights", checkpoint, "--out", "r[/x].csv")
    assert result.exit_code == 0, result.output
    assert "report written to r[/x].csv" in result.stderr and (bracketed / "r[" / "x].csv").is_file()


def test_brackets_in_an_error_message_and_a_crash_are_exit_2_in_one_line(bracketed, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(bracketed)
    result = cli.scan(".", "--weights", checkpoint, "--out", "no[/such]/r.csv")
    assert result.exit_code == 2 and "no[/such]/r.csv" in result.stderr, result.output
    monkeypatch.setattr("ipdscan.cli.scan.print_summary", lambda *args: 1 / 0)
    result = cli.scan(".", "--weights", checkpoint, "--out", "r.csv")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: ZeroDivisionError: division by zero"


def test_a_crash_escaping_the_app_is_exit_2_in_one_line(monkeypatch, capsys):
    def crash():
        raise RuntimeError("bad [/oops] \x1b[2J")
    monkeypatch.setattr("ipdscan.cli.commands.app", crash)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: RuntimeError: bad [/oops] \\x1b[2J\n"


def test_printable_shows_control_and_bidi_characters_as_escapes():
    assert printable("a\x1b[2Jb\x1b]0;title\x07\t\n\r\x7f\x9b\u202eok\udce9") == \
        "a\\x1b[2Jb\\x1b]0;title\\x07\\x09\\x0a\\x0d\\x7f\\x9b\\u202eok\\xe9"
    assert printable("Ünïcødé 写真 [x]") == "Ünïcødé 写真 [x]"


def test_terminal_escapes_in_names_and_url_lines_are_neutralised(tmp_path, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "clear\x1b[2J.png", "png")
    make_image(tmp_path / "title\x1b]0;pwned\x07.png", "png")
    (tmp_path / "urls.txt").write_text("https://e.example/\x1b[31mred\u202e.png\n")
    result = cli.scan(".", "urls.txt", "--weights", checkpoint)
    assert result.exit_code == 0, result.output
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "clear\\x1b[2J.png" in result.stdout and "title\\x1b]0;pwned\\x07.png" in result.stdout
    assert "https://e.example/\\x1b[31mred\\u202e.png" in result.stdout
    assert "clear\\x1b[2J.png" in result.stderr  # the summary's highest scores


def read_csv_inputs(path):
    with open(path, newline="") as f:
        return {Path(row["input"]).name: row["error_code"] for row in csv.DictReader(f)}


def stderr_lines(result):
    return result.stderr.strip().splitlines()


def test_a_missing_command_line_path_exits_2_after_scanning_and_reporting_the_rest(tmp_path, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a.png", "png")
    for extra in ([], ["--fail-on", "0"]):
        result = cli.scan("a.png", "missing.jpg", "--weights", checkpoint, "--out", "r.csv", "-q", *extra)
        assert result.exit_code == 2, result.output
        assert read_csv_inputs(tmp_path / "r.csv") == {"a.png": "", "missing.jpg": "not_found"}
        assert stderr_lines(result)[-1] == "error: no such file or directory: missing.jpg"


def test_an_empty_run_warns_whatever_the_flags(tmp_path, checkpoint, cli):
    (tmp_path / "empty").mkdir()
    for flags in ([], ["-q"], ["-q", "--fail-on", "0.5"]):
        result = cli.scan(tmp_path / "empty", "--weights", checkpoint, "--out", tmp_path / "r.jsonl", *flags)
        assert result.exit_code == 0, result.output
        assert "warning: nothing was scanned: the inputs hold no image files or URLs" in result.stderr


def test_per_input_errors_reach_stderr_when_quiet_and_fail_on_error_makes_them_exit_2(tmp_path, checkpoint,
                                                                                      monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    make_image(tmp_path / "photos" / "empty.jpg", "empty")
    for flags in ([], ["--fail-on", "0.5"]):  # fail closed: a run that judged nothing never passes a gate
        result = cli.scan("photos", "--weights", checkpoint, "--out", "r.csv", "-q", *flags)
        assert result.exit_code == 2, result.output
        assert stderr_lines(result) == ["ipdscan: photos/empty.jpg: the file is empty (empty_file)",
                                        "error: every input failed (1 of 1): nothing was scored, so there is no verdict"]
    make_image(tmp_path / "photos" / "a.png", "png")
    result = cli.scan("photos", "--weights", checkpoint, "--out", "r.csv", "-q", "--fail-on-error")
    assert result.exit_code == 2, result.output
    assert read_csv_inputs(tmp_path / "r.csv") == {"a.png": "", "empty.jpg": "empty_file"}
    assert stderr_lines(result)[-1] == "error: 1 of 2 inputs could not be scanned (--fail-on-error)"
    assert cli.scan("photos/a.png", "--weights", checkpoint, "-q", "--fail-on-error").exit_code == 0


def test_a_png_text_bomb_is_scored_flagged_and_keeps_its_evidence(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21, item 1: a zTXt chunk inflating past 1 MB made a PNG a decode_error, so --fail-on and
    --fail-on-evidence exited 0 on it, and a ComfyUI PNG with a 1.4 MB workflow lost its comfyui: evidence."""
    from evidence_files import COMFY_WORKFLOW, png_with_text
    from images import with_png_text_bomb
    monkeypatch.chdir(tmp_path)
    plain = png_with_text(prompt="a cat")
    workflow = COMFY_WORKFLOW[:-1] + ', "extra": "' + "x" * 1_400_000 + '"}'
    (tmp_path / "plain.png").write_bytes(plain)
    (tmp_path / "bomb.png").write_bytes(with_png_text_bomb(plain))
    (tmp_path / "comfy.png").write_bytes(with_png_text_bomb(plain, b"workflow", workflow.encode()))
    rows = {}
    for name in ("plain.png", "bomb.png", "comfy.png"):
        result = cli.scan(name, "--weights", checkpoint, "--fail-on", "0", "--out", f"{name}.jsonl", "-q")
        assert result.exit_code == 1, result.output
        rows[name] = json.loads((tmp_path / f"{name}.jsonl").read_text())
    assert rows["plain.png"]["score"] == rows["bomb.png"]["score"] == rows["comfy.png"]["score"]
    assert rows["comfy.png"]["evidence"] == "comfyui:workflow"
    assert json.loads(rows["comfy.png"]["evidence_detail"])["truncated"] == [
        "png:workflow: over 1,048,576 bytes, only the first 1,048,576 read"]
    assert cli.scan("comfy.png", "--weights", checkpoint, "--fail-on-evidence", "-q").exit_code == 1


@pytest.mark.slow  # two scans in real processes each (a real stdin), ~11 s even without workers
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_bad_stdin_line_is_an_error_row_and_null_separated_names_are_read(tmp_path, checkpoint, workers, run_cli):
    """Issue 21, item 2: a NUL byte on stdin stopped the scan (exit 2, no rows, a traceback as the message);
    a line longer than any name was echoed whole. Each is a row with an error now, and -0 reads find -print0."""
    make_image(tmp_path / "a.png", "png")
    make_image(tmp_path / "new\nline.png", "png")
    long_line = "y" * 300_000
    proc = run_cli("scan", "-", "--weights", checkpoint, "--out", "r.jsonl", "--workers", workers, "-q",
                   cwd=tmp_path, stdin=f"a.png\nx\0y\n{long_line}\na.png\n")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(row["input"], row["error_code"]) for row in rows] == [
        ("a.png", ""), ("x\0y", "invalid_input"), ("y" * 200 + "…", "invalid_input"), ("a.png", "")]
    assert stderr_lines(proc) == ["ipdscan: x\\x00y: holds a NUL byte, which no file name can (invalid_input)",
                                  f"ipdscan: {'y' * 200}…: over 65,536 characters, longer than any file name or URL "
                                  "(invalid_input)"]
    proc = run_cli("scan", "-", "-0", "--weights", checkpoint, "--out", "r.jsonl", "--workers", workers, "-q",
                   cwd=tmp_path, stdin="new\nline.png\0a.png\0")
    assert proc.returncode == 0, proc.stderr
    assert jsonl_inputs(tmp_path / "r.jsonl") == ["new\nline.png", "a.png"]
    assert all(json.loads(line)["status"] == "ok" for line in (tmp_path / "r.jsonl").read_text().splitlines())


def test_a_report_that_is_one_of_the_inputs_is_refused_untouched(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21, item 6: `scan list.csv --out list.csv` replaced the URL list with the report and exited 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    make_image(tmp_path / "photos" / "a.png", "png")
    (tmp_path / "list.csv").write_text("url\nhttps://example.com/a.png\n")
    (tmp_path / "link.csv").symlink_to("list.csv")
    for out in ("list.csv", "link.csv", "../" + tmp_path.name + "/list.csv"):
        result = cli.scan("photos", "list.csv", "--weights", checkpoint, "--out", out)
        assert result.exit_code == 2, result.output
        assert stderr_lines(result) == [f"error: --out {out} is the input list.csv: the report would overwrite it; "
                                        "write the report to another file"]
    assert (tmp_path / "list.csv").read_text() == "url\nhttps://example.com/a.png\n"
    # A report inside a scanned folder is no input: a folder walk takes image files only.
    assert cli.scan("photos", "--weights", checkpoint, "--out", "photos/r.csv", "-q").exit_code == 0
    assert cli.scan("photos", "--weights", checkpoint, "--out", "photos/r.csv", "-q").exit_code == 0
    assert read_csv_inputs(tmp_path / "photos" / "r.csv") == {"a.png": ""}


def test_names_that_are_not_utf8_round_trip_through_merge_and_resume(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21, item 7: 'caf<0xE9>.jpg' was written as the text 'caf\\xe9.jpg', so merge --expect saw a gap and
    exited 2, and a file really named 'caf\\xe9.jpg' got the same input (duplicate rows)."""
    monkeypatch.chdir(tmp_path)
    photos = os.path.join(os.fsencode(tmp_path), b"photos")
    os.mkdir(photos)
    for name in (b"caf\xe9.jpg", b"caf\\xe9.jpg", b"plain.jpg"):
        make_image(os.fsdecode(os.path.join(photos, name)), "jpeg")
    for k in (1, 2):
        assert cli.scan("photos", "--weights", checkpoint, "--shard", f"{k}/2", "--out", f"p{k}.jsonl", "-q").exit_code == 0
    result = cli.invoke(["merge", "p1.jsonl", "p2.jsonl", "--out", "all.jsonl", "--expect", "photos"])
    assert result.exit_code == 0, result.output
    assert jsonl_inputs(tmp_path / "all.jsonl") == ["photos/caf\\\\xe9.jpg", "photos/caf\\xe9.jpg", "photos/plain.jpg"]
    result = cli.scan("photos", "--weights", checkpoint, "--out", "all.jsonl", "--resume", "-q")
    assert result.exit_code == 0, result.output
    assert len(jsonl_inputs(tmp_path / "all.jsonl")) == 3  # nothing scanned twice


def test_a_nan_checkpoint_is_refused_and_a_nan_score_is_a_model_error(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21, item 8: NaN weights wrote "score": NaN (not JSON), labelled real, and --fail-on 0.5 exited 0."""
    from ipdscan.model.detector import Detector

    from checkpoints import make_checkpoint
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a.png", "png")
    make_image(tmp_path / "b.png", "png")
    make_checkpoint(tmp_path / "nan.pt", nan=True)
    result = cli.scan("a.png", "--weights", "nan.pt", "--fail-on", "0.5")
    assert result.exit_code == 2
    assert stderr_lines(result) == [next(line for line in stderr_lines(result) if "nan.pt is unusable" in line)]
    score = Detector.score
    def first_is_nan(self, crops):
        scores = score(self, crops)
        scores[0] = float("nan")
        return scores
    monkeypatch.setattr(Detector, "score", first_is_nan)
    result = cli.scan("a.png", "b.png", "--weights", checkpoint, "--fail-on", "0", "--batch-size", "1", "--out", "r.jsonl")
    assert result.exit_code == 2, result.output
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]  # strict JSON: no NaN
    assert [(row["status"], row["error_code"], row["score"], row["label"]) for row in rows] == [
        ("error", "model_error", None, ""), ("error", "model_error", None, "")]
    assert rows[0]["format"] == "PNG"  # what the file is, still known
    assert stderr_lines(result)[-1] == ("error: the model gave no score for 2 of 2 inputs (model_error): "
                                        "the weights or the device are faulty")


@pytest.mark.parametrize("line,problem", [
    ("5", "not a JSON object"), ("null", "not a JSON object"), ("[1]", "not a JSON object"),
    ('{"status": "error"}', "no input: it must be a non-empty string"),
    ('{"input": "b.png", "status": "error"}', "an error row has an error_code"),
    ('{"input": "b.png", "status": "ok", "score": 0.9, "label": "real"}', "label 'real' for score 0.9 at threshold 0.5"),
])
def test_resume_refuses_the_rows_merge_refuses(tmp_path, checkpoint, monkeypatch, line, problem, cli):
    """Issue 21, item 10: --resume took `5`, `null` or `[1]` for a row (error: AttributeError) and accepted an
    error row without a code; merge took score 0.9 labelled real. One validator now, with the scan's threshold."""
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a.png", "png")
    make_image(tmp_path / "b.png", "png")
    assert cli.scan("a.png", "--weights", checkpoint, "--out", "r.jsonl", "--threshold", "0.5", "-q").exit_code == 0
    with open(tmp_path / "r.jsonl", "a") as report:
        report.write(line + "\n")
    before = (tmp_path / "r.jsonl").read_text()
    result = cli.scan("a.png", "b.png", "--weights", checkpoint, "--out", "r.jsonl", "--resume", "--threshold", "0.5")
    assert result.exit_code == 2, result.output
    assert stderr_lines(result) == [f"error: r.jsonl, line 2: not an ipdscan report row ({problem}), cannot resume from it"]
    assert (tmp_path / "r.jsonl").read_text() == before
    merged = cli.invoke(["merge", "r.jsonl", "--out", "all.jsonl"])
    assert merged.exit_code == 2 and problem in merged.stderr


def test_more_workers_than_cpus_are_capped_with_a_warning(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21: --workers 500 started 500 processes, each with its own torch."""
    from ipdscan.model.runtime import default_workers
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ipdscan.model.runtime.usable_cpus", lambda: 1)
    assert default_workers(500, "cpu") == 1
    make_image(tmp_path / "a.png", "png")
    result = cli.invoke(["scan", "a.png", "--weights", str(checkpoint), "--workers", "500", "-q"])
    assert result.exit_code == 0, result.output
    assert stderr_lines(result) == ["warning: --workers 500: more than this machine's 1 CPUs can use; starting 1"]


def test_help_lists_the_exit_codes(cli):
    result = cli.invoke(["scan", "--help"])
    assert result.exit_code == 0
    words = " ".join(result.stdout.split())  # rich wraps the help to the terminal's width
    for text in ("--fail-on-error", "Exit codes: 0 the scan finished", "1 flagged", "2 error"):
        assert text in words, text


def wait_for_line(stream, text, timeout_s=120.0):
    """Read ``stream`` until a line holding ``text``; the lines read."""
    deadline, lines = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 1.0)
        if ready:
            line = stream.readline()
            if not line:
                break
            lines.append(line)
            if text in line:
                return lines
    raise AssertionError(f"no line with {text!r} within {timeout_s} s: {lines}")


def read_report(path):
    """The rows of a report of any format; raises if it is not valid."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return [(row["input"], row["error_code"]) for row in csv.DictReader(f)]
    if path.suffix == ".jsonl":
        return [(row["input"], row["error_code"]) for row in map(json.loads, path.read_text().splitlines())]
    if path.suffix == ".html":  # the error cards, which come last
        text = path.read_text(encoding="utf-8")
        assert "Interrupted scan:" in text
        names, codes = re.findall(r'<div class="name">(.*?)</div>', text), re.findall(r'"badge code">(.*?)<', text)
        return list(zip(names[len(names) - len(codes):], codes))
    document = json.loads(path.read_text())
    if path.suffix == ".json":
        assert document["header"]["interrupted"] is True
        return [(row["input"], row["error_code"]) for row in document["items"]]
    return [(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], result["ruleId"])
            for result in document["runs"][0]["results"]]


@pytest.mark.parametrize("suffix,signum,workers", [
    (".csv", signal.SIGTERM, 0), (".json", signal.SIGTERM, 1), (".sarif", signal.SIGTERM, 0),
    (".jsonl", signal.SIGTERM, 1), (".csv", signal.SIGINT, 1), (".json", signal.SIGINT, 0), (".html", signal.SIGINT, 0)])
@pytest.mark.slow
def test_a_signal_mid_scan_leaves_a_valid_partial_report_and_exits_2(tmp_path, checkpoint, suffix, signum, workers, run_cli):
    """stdin stays open, so the scan is mid-way for sure when the signal comes: it has reported missing.png."""
    for i in range(20):
        make_image(tmp_path / f"{i}.png", "png")
    out = tmp_path / f"r{suffix}"
    proc = run_cli.popen("-m", "ipdscan", "scan", "-", "--weights", checkpoint, "--out", out, "--workers", workers,
                         "--batch-size", "1", cwd=tmp_path, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("missing.png\n" + "".join(f"{i}.png\n" for i in range(20)))
        proc.stdin.flush()
        wait_for_line(proc.stderr, "ipdscan: missing.png: ")
        proc.send_signal(signum)
        assert proc.wait(timeout=run_cli.timeout) == 2
        last = proc.stderr.read().strip().splitlines()[-1]
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stderr.close()
    why = "terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted"
    assert last.startswith(f"error: scan {why} after ") and last.endswith(f"; {out} holds them")
    rows = read_report(out)
    assert rows[0] == ("missing.png", "ipdscan/scan-error" if suffix == ".sarif" else "not_found")
    assert not list(tmp_path.glob(".*.part"))  # published in one piece, no temporary file left


def test_ctrl_c_outside_the_scan_loop_is_exit_2(tmp_path, checkpoint, monkeypatch, capsys, cli):
    make_image(tmp_path / "a.png", "png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("ipdscan.model.detector.load_detector", interrupted)  # the CLI imports it when it runs
    result = cli.scan(tmp_path / "a.png", "--weights", checkpoint)
    assert result.exit_code == 2 and stderr_lines(result) == ["error: interrupted"]
    monkeypatch.setattr("ipdscan.cli.commands.app", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: interrupted\n"


@pytest.mark.parametrize("command,patched", [("merge", "reports.merge.merge_reports"), ("report", "reports.merge.merge_reports"),
                                             ("eval", "model.backends.load_backend"), ("explain", "model.detector.load_detector")])
def test_ctrl_c_in_the_other_commands_is_exit_2(tmp_path, monkeypatch, command, patched, cli):
    """Unguarded, click turns the KeyboardInterrupt into its own abort: exit 130 (or 1, "flagged")."""
    (tmp_path / "part.jsonl").write_text("")
    make_image(tmp_path / "a.png", "png")
    args = {"merge": ["part.jsonl", "--out", "all.csv"], "report": ["part.jsonl", "--out", "part.html"], "eval": ["."],
            "explain": ["a.png", "--out", "heat.png"]}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(f"ipdscan.{patched}", interrupted)  # where the CLI imports it from when it runs
    monkeypatch.chdir(tmp_path)
    result = cli.invoke([command, *args[command]])
    assert result.exit_code == 2 and stderr_lines(result) == ["error: interrupted"], result.output


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_is_still_importing_is_one_line_and_exit_2(signum, run_cli):
    """The console script's entry: the signal arrives while the CLI (torch) is being imported, before main()."""
    code = f"""
import os, sys, time
class SignalDuringImport:
    def find_spec(self, name, path=None, target=None):
        if name == "ipdscan.cli.commands":
            os.kill(os.getpid(), {int(signum)})
            time.sleep(5)  # the handler raises before this ends
sys.meta_path.insert(0, SignalDuringImport())
sys.argv = ["ipdscan", "--help"]  # a bare --version never imports the CLI (entry.py)
from ipdscan.entry import main
main()
"""
    run = run_cli.python("-c", code)
    why = "terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted"  # as a scan says it
    assert (run.returncode, run.stderr, run.stdout) == (2, f"error: {why}\n", "")


START_METHOD_SCAN = """
import multiprocessing, sys
multiprocessing.set_start_method(sys.argv[1], force=True)
sys.argv = ["ipdscan", *sys.argv[2:]]
from ipdscan.entry import main
main()
"""


@pytest.mark.slow  # processes that import torch, and spawned workers that import it again
def test_a_folder_scan_under_spawn_gives_the_rows_it_gives_under_fork(tmp_path, checkpoint, run_cli):
    """Issue 33, item 11: under spawn (Windows, macOS, forkserver) the DataLoader's dataset held sys.stdin:
    "cannot pickle '_io.TextIOWrapper'". Every object that crosses to a worker is picklable now."""
    for name, kind in (("a.png", "png"), ("b.jpg", "jpeg"), ("c.webp", "webp"), ("d.png", "gray"), ("e.bmp", "bmp")):
        make_image(tmp_path / name, kind)
    rows = {}
    for method in ("fork", "spawn"):
        run = run_cli.python("-c", START_METHOD_SCAN, method, "scan", tmp_path, "--weights", checkpoint, "--workers", "1",
                             "--batch-size", "2", "--backend", "torch", "--device", "cpu", "--format", "jsonl",
                             "--out", "-", "-q")
        assert run.returncode == 0 and run.stderr == "", (method, run.stderr)
        rows[method] = [json.loads(line) for line in run.stdout.splitlines()]
    assert rows["spawn"] == rows["fork"] and len(rows["fork"]) == 5


def test_a_worker_sent_sigterm_with_its_process_group_leaves_quietly(tmp_path, detector, capfd):
    """Issue 33, item 13: a SIGTERM to the process group killed the DataLoader workers by the signal, and the
    scanning process printed torch's "worker is killed by signal: Terminated" traceback as it shut them down."""
    import multiprocessing

    from ipdscan.scanning.options import ScanOptions
    from ipdscan.scanning.plan import plan_scan
    from ipdscan.scanning.torch_loader import loader_batches
    for index in range(6):
        make_image(tmp_path / f"{index}.png", "png")
    batches = loader_batches(plan_scan(detector, ScanOptions(workers=1, batch_size=1), [str(tmp_path)]))
    next(batches)
    (worker,) = multiprocessing.active_children()
    # from another process, as `kill -TERM -PGID` sends it (torch's workers leave quietly when their parent does)
    subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)
    worker.join(timeout=30)
    assert worker.exitcode == 0  # left, not killed by the signal
    batches.close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow  # a process that imports torch
def test_importing_ipdscan_leaves_torch_for_first_use(run_cli):
    """ScanOptions imported torch (and device_decode), so `ipdscan merge` loaded it: what a scan comes to on a
    device is the plan's, once the detector has loaded."""
    run = run_cli.python("-c", "import sys, ipdscan; print('torch' in sys.modules); "
                         "ipdscan.ScanOptions; print('torch' in sys.modules); "
                         "ipdscan.Detector; print('torch' in sys.modules)")
    assert run.stdout.split() == ["False", "False", "True"], run.stderr


def test_sigterm_raises_like_ctrl_c_and_neither_cuts_a_deferred_block():
    from ipdscan.interrupt import Terminated, interrupts_deferred, sigterm_as_interrupt
    finished = []
    with sigterm_as_interrupt():
        with pytest.raises(Terminated, match="terminated by SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        for signum, raised in ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)):
            with pytest.raises(raised):
                with interrupts_deferred():
                    os.kill(os.getpid(), signum)
                    time.sleep(0.1)
                    finished.append(signum)
    assert finished == [signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json", ".sarif"])
def test_a_report_another_scan_is_writing_is_refused_untouched(tmp_path, checkpoint, monkeypatch, suffix, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "a.png", "png")
    out = tmp_path / f"r{suffix}"
    out.write_text("the other scan's rows\n")
    with open(tmp_path / f"r{suffix}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what the other scan holds
        for extra in (["--resume"] if suffix == ".jsonl" else []), []:
            result = cli.scan("a.png", "--weights", checkpoint, "--out", out.name, *extra)
            assert result.exit_code == 2, result.output
            assert stderr_lines(result) == [f"error: another scan is writing {out.name} (it holds {out.resolve()}.lock)"]
            assert out.read_text() == "the other scan's rows\n"
    assert cli.scan("a.png", "--weights", checkpoint, "--out", out.name, "-q").exit_code == 0
    assert not (tmp_path / f"r{suffix}.lock").exists()  # removed by the scan that held it last


def test_a_symlink_to_a_report_is_locked_as_the_report(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 21, item 5: a scan of b.jsonl -> a.jsonl took b.jsonl.lock while another held a.jsonl.lock, and
    both appended to a.jsonl (200 rows for 100 inputs)."""
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "x.png", "png")
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").symlink_to("a.jsonl")
    (tmp_path / "linked").symlink_to(".")
    with open(tmp_path / "a.jsonl.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for out in ("b.jsonl", "linked/a.jsonl"):
            result = cli.scan("x.png", "--weights", checkpoint, "--out", out, "--resume")
            assert result.exit_code == 2, result.output
            assert f"another scan is writing {out} (it holds {tmp_path.resolve()}/a.jsonl.lock)" in result.stderr
    assert (tmp_path / "a.jsonl").read_text() == ""


def test_a_hard_link_to_a_report_is_locked_as_the_same_file(tmp_path, checkpoint, monkeypatch, cli):
    """Issue 33, item 7: a.jsonl and its hard link b.jsonl name two lock files; two scans interleaved in one file."""
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "x.png", "png")
    (tmp_path / "a.jsonl").write_text("")
    os.link(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    from ipdscan.reports.lock import ReportLock
    with ReportLock(tmp_path / "a.jsonl"):
        result = cli.scan("x.png", "--weights", checkpoint, "--out", "b.jsonl", "--resume")
        assert result.exit_code == 2 and result.stdout == ""
        assert stderr_lines(result) == ["error: another scan is writing b.jsonl under another name (a hard link to it)"]
    assert (tmp_path / "a.jsonl").read_text() == "" and not (tmp_path / "b.jsonl.lock").exists()
    assert cli.scan("x.png", "--weights", checkpoint, "--out", "b.jsonl", "--resume", "-q").exit_code == 0


def test_a_planted_lock_symlink_is_refused_not_followed(tmp_path, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "x.png", "png")
    (tmp_path / "r.csv.lock").symlink_to(tmp_path / "victim")  # O_CREAT through it would make the victim
    result = cli.scan("x.png", "--weights", checkpoint, "--out", "r.csv")
    assert result.exit_code == 2 and not (tmp_path / "victim").exists() and not (tmp_path / "r.csv").exists()
    assert stderr_lines(result) == [f"error: cannot write the report r.csv: its lock file {tmp_path.resolve()}/r.csv.lock "
                                    "is a symbolic link, which no scan makes: remove it"]


@pytest.mark.parametrize("out,stdin", [("list.csv", "list.csv"), ("r.txt", "x.png\nlinked.txt")])
def test_an_input_named_on_stdin_is_never_overwritten_by_the_report(tmp_path, checkpoint, monkeypatch, out, stdin, cli):
    """Issue 33, item 8: `echo list.csv | ipdscan scan - --out list.csv` replaced the URL list with the report."""
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "x.png", "png")
    (tmp_path / "list.csv").write_text("url\nhttps://example.invalid/a.png\n")
    (tmp_path / "r.txt").write_text("x.png\n")
    os.link(tmp_path / "r.txt", tmp_path / "linked.txt")  # the same file by inode, by another name
    before = {name: (tmp_path / name).read_text() for name in ("list.csv", "r.txt")}
    result = cli.scan("-", "--weights", checkpoint, "--out", out, "--format", "csv", input=stdin + "\n")
    assert result.exit_code == 2 and result.stdout == ""
    named = stdin.splitlines()[-1]
    assert stderr_lines(result)[-1].startswith(f"error: scan stopped: --out {out} is the input {named} named on stdin: "
                                               "the report would overwrite it; write the report to another file")
    assert {name: (tmp_path / name).read_text() for name in ("list.csv", "r.txt")} == before


def test_every_command_that_writes_refuses_an_output_that_is_its_input(tmp_path, checkpoint, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    make_image(tmp_path / "y.png", "png")
    os.link("y.png", "z.png")
    image = (tmp_path / "y.png").read_bytes()
    for args in (["explain", "y.png", "--out", "y.png"], ["explain", "y.png", "--out", "z.png"]):
        result = cli(*args, "--weights", checkpoint, "--device", "cpu")
        assert result.exit_code == 2 and "the heatmap would replace it" in result.stderr, result.output
    assert (tmp_path / "y.png").read_bytes() == image
    assert cli.scan("y.png", "--weights", checkpoint, "--out", "r.jsonl", "-q").exit_code == 0
    os.link("r.jsonl", "s.jsonl")
    for command in ("merge", "report"):
        result = cli(command, "r.jsonl", "--out", "s.jsonl")
        assert result.exit_code == 2 and "--out s.jsonl is" in result.stderr, result.output


HOLDER = """
import os, sys, time
from ipdscan.reports.lock import ReportLock
lock = ReportLock(sys.argv[1]).acquire()
child = os.fork()  # as the DataLoader forks its workers
if child == 0:
    # The child says it is there only once it runs: its fork handlers have closed the lock's descriptor by now
    # (a pid printed by the parent could reach the test before the child had run at all).
    print(os.getpid(), flush=True)
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def test_processes_forked_by_a_scan_do_not_hold_its_lock_after_it_is_killed(tmp_path, run_cli):
    """Issue 21, item 4: DataLoader workers inherited the lock's descriptor, so a --resume right after kill -9
    was refused as "another scan is writing" for as long as the orphaned workers lived."""
    from ipdscan.reports.lock import ReportLock
    scan_process = run_cli.popen("-c", HOLDER, tmp_path / "r.jsonl", stdout=subprocess.PIPE, text=True)
    child = int(scan_process.stdout.readline())
    try:
        scan_process.kill()
        scan_process.wait()
        os.kill(child, 0)  # the orphan lives on
        ReportLock(tmp_path / "r.jsonl").acquire().release()
    finally:
        os.kill(child, signal.SIGKILL)
        scan_process.stdout.close()


@pytest.mark.slow
def test_two_scans_of_one_jsonl_report_cannot_interleave(tmp_path, checkpoint, run_cli):
    """The first scan waits on its stdin, holding the report, while a second one tries to resume it."""
    for i in range(3):
        make_image(tmp_path / f"{i}.png", "png")
    first = run_cli.popen("-m", "ipdscan", "scan", "-", "--weights", checkpoint, "--out", "r.jsonl", "--resume",
                          "--workers", "0", "--batch-size", "1", "-q", cwd=tmp_path, stdin=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        first.stdin.write("missing.png\n" + "".join(f"{i}.png\n" for i in range(3)) * 6)  # past the read-ahead
        first.stdin.flush()
        wait_for_line(first.stderr, "ipdscan: missing.png: ")
        second = run_cli("scan", ".", "--weights", checkpoint, "--out", "r.jsonl", "--resume", cwd=tmp_path)
        assert second.returncode == 2 and "another scan is writing r.jsonl" in second.stderr, second.stderr
        first.stdin.close()
        assert first.wait(timeout=run_cli.timeout) == 0
    finally:
        first.kill()
        first.stderr.close()
    rows = jsonl_inputs(tmp_path / "r.jsonl")
    assert rows == ["missing.png"] + [f"{i}.png" for i in range(3)] * 6  # the second scan wrote nothing
