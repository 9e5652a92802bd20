"""CI and pipeline use: the report on stdout (--format, --out -), suppressions (ignore file, baseline),
configuration (file and IPDSCAN_* variables) and a start that never loads torch for help, config or bad arguments."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipdscan.scanning.result import FIELDS

from images import make_image

KINDS = ("png", "jpeg", "webp", "gray")  # distinct bytes, so distinct sha256


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("IPDSCAN_FAIL_ON", "IPDSCAN_FORMAT", "IPDSCAN_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "photos"
    folder.mkdir()
    for kind in KINDS:
        make_image(folder / f"{kind}.img.png" if kind != "jpeg" else folder / "jpeg.jpg", kind)
    return folder


def jsonl_rows(text):
    return [json.loads(line) for line in text.splitlines()]


# --- the report on stdout -------------------------------------------------------------------------------------

def test_jsonl_and_csv_on_stdout_carry_only_rows(photos, checkpoint, cli):
    result = cli.scan(photos, "--weights", checkpoint, "--format", "jsonl", "--out", "-")
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(result.stdout)
    assert len(rows) == len(KINDS) and all(list(row) == FIELDS for row in rows)
    assert all(0 <= row["score"] <= 1 for row in rows)
    assert "scanned 4" in result.stderr and "report written to stdout" in result.stderr
    result = cli.scan(photos, "--weights", checkpoint, "--format", "csv", "-q")  # --format alone: stdout too
    assert result.exit_code == 0 and result.stderr == ""
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(table) == len(KINDS) and list(table[0]) == FIELDS
    assert not list(photos.parent.glob("*.lock")) and not list(Path.cwd().glob("-*"))  # no file, no lock


@pytest.mark.slow
def test_sarif_json_and_html_on_stdout_are_whole_documents(photos, checkpoint, cli):
    result = cli.scan(photos, "--weights", checkpoint, "--format", "sarif", "--out", "/dev/stdout", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "2.1.0"
    result = cli.scan(photos, "--weights", checkpoint, "--format", "json", "-o", "-", "-q")
    assert len(json.loads(result.stdout)["items"]) == len(KINDS)
    result = cli.scan(photos, "--weights", checkpoint, "--format", "html", "-o", "-", "-q")
    assert result.exit_code == 0 and result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout.count('<li class="card') == len(KINDS)


def sarif_locations(stdout):
    run = json.loads(stdout)["runs"][0]
    uris = sorted(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for result in run["results"])
    bases = {result["locations"][0]["physicalLocation"]["artifactLocation"].get("uriBaseId")
             for result in run["results"]}
    return uris, bases, run["originalUriBaseIds"]["SRCROOT"]["uri"]


def test_sarif_locations_are_relative_to_the_repository_root_however_the_scan_is_called(photos, checkpoint,
                                                                                        tmp_path, cli):
    """Code scanning maps a location to a file by its path from the repository's root: the same path whether the
    scan names a folder, runs in a subfolder or names files; outside a repository, the current directory's."""
    in_photos = sorted(f"photos/{path.name}" for path in photos.iterdir())
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--format", "sarif", "-q")
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert sarif_locations(result.stdout) == (in_photos, {"SRCROOT"}, tmp_path.as_uri() + "/")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (photos / "sub").mkdir()
    make_image(photos / "sub" / "deep.png", "bmp")
    photos.rename(repo / "photos")
    expected = (sorted([*in_photos, "photos/sub/deep.png"]), {"SRCROOT"}, repo.as_uri() + "/")
    for cwd, args in [(repo, ["photos"]), (repo / "photos", ["."]), (repo / "photos" / "sub", [".."]),
                      (repo / "photos", sorted(path.name for path in (repo / "photos").iterdir()))]:
        os.chdir(cwd)
        result = cli.scan(*args, "--weights", checkpoint, "--threshold", "0", "--format", "sarif", "-q")
        assert result.exit_code == 0 and result.stderr == "", result.output
        assert sarif_locations(result.stdout) == expected, (cwd, args)


def test_format_wins_over_the_extension_and_a_file_named_dash_is_a_file(photos, checkpoint, tmp_path, cli):
    assert cli.scan(photos, "--weights", checkpoint, "--format", "jsonl", "--out", tmp_path / "r.txt", "-q").exit_code == 0
    assert len(jsonl_rows((tmp_path / "r.txt").read_text())) == len(KINDS)
    result = cli.scan(photos, "--weights", checkpoint, "--format", "csv", "--out", "./-", "-q")
    assert result.exit_code == 0 and result.stdout == "" and (tmp_path / "-").read_text().startswith("input,")


@pytest.mark.parametrize("args,message", [
    (["--out", "-", "--resume"], "--resume needs --out FILE.jsonl"),
    (["--format", "jsonl", "--resume"], "--resume needs --out FILE.jsonl"),
])
def test_stdout_reports_cannot_resume(photos, checkpoint, args, message, cli):
    result = cli.scan(photos, "--weights", checkpoint, "--format", "jsonl", *args)
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.slow
def test_a_pipe_into_a_json_reader_works(photos, checkpoint, run_cli):
    """The acceptance pipeline, `ipdscan scan examples/ --format jsonl --out - | jq -r .score`, with Python as jq."""
    scan_proc = run_cli.popen("-m", "ipdscan", "scan", photos, "--weights", checkpoint, "--format", "jsonl", "--out", "-",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = subprocess.run([sys.executable, "-c", "import json, sys\nfor line in sys.stdin: print(json.loads(line)['score'])"],
                            stdin=scan_proc.stdout, capture_output=True, text=True, timeout=run_cli.timeout)
    scan_proc.stdout.close()
    assert scan_proc.wait(timeout=run_cli.timeout) == 0 and reader.returncode == 0
    assert len([float(score) for score in reader.stdout.split()]) == len(KINDS)
    assert b"scanned 4" in scan_proc.stderr.read()


def test_a_flagged_run_names_the_files_that_tripped_it_even_when_quiet(photos, checkpoint, cli):
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "-q", "--format", "jsonl")
    assert result.exit_code == 1
    rows = sorted(jsonl_rows(result.stdout), key=lambda row: -row["score"])
    assert result.stderr.splitlines() == [
        "flagged: 4 scored at or above --fail-on 0: " + ", ".join(f"{row['input']} ({row['score']:.3f})" for row in rows)]


@pytest.mark.slow  # a real process and a real pipe
@pytest.mark.parametrize("flags,code", [([], 0), (["--threshold", "0", "--fail-on", "0"], 1)])
def test_a_reader_that_stops_early_ends_the_scan_quietly(photos, checkpoint, flags, code, run_cli):
    """`ipdscan scan --out - | head -1` ended with "error: scan stopped by BrokenPipeError" and exit 2."""
    scan = run_cli.popen("-m", "ipdscan", "scan", photos, "--weights", checkpoint, "--workers", "0", "--batch-size", "1",
                         "--format", "jsonl", "--out", "-", *flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(scan.stdout.readline())["input"]  # head -1
    scan.stdout.close()
    assert scan.wait(timeout=run_cli.timeout) == code
    stderr = scan.stderr.read().decode()
    assert "Error" not in stderr and "stopped" not in stderr and "Traceback" not in stderr, stderr


# --- suppressions -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_baseline_suppresses_an_identical_rescan_and_a_new_file_still_fails(photos, checkpoint, tmp_path, cli):
    baseline = tmp_path / "baseline.sarif"
    for name in ("baseline.sarif", "baseline.jsonl"):
        assert cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "-q", "--out", tmp_path / name).exit_code == 0
    for base in (baseline, tmp_path / "baseline.jsonl"):
        result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "--baseline", base,
                          "--format", "jsonl")
        assert result.exit_code == 0, result.output
        rows = jsonl_rows(result.stdout)
        assert {row["suppressed"] for row in rows} == {"baseline"}
        assert all(row["suppression_reason"] == f"already reported in {base}" for row in rows)
        assert "0 flagged" in result.stderr and "4 suppressed" in result.stderr
    make_image(photos / "new.bmp", "bmp")
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "--baseline", baseline, "-q",
                      "--format", "sarif")
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["runs"][0]["results"]
    assert sum("suppressions" in finding for finding in findings) == len(KINDS)
    new = [f for f in findings if "suppressions" not in f]
    assert [f["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for f in new] == ["photos/new.bmp"]


@pytest.mark.slow
def test_an_ignore_file_suppresses_by_sha256_or_glob_with_reasons(photos, checkpoint, tmp_path, cli):
    digest = jsonl_rows(cli.scan(photos / "gray.img.png", "--weights", checkpoint, "--format", "jsonl", "-q").stdout)[0]["sha256"]
    (photos / ".ipdscanignore").write_text(f"# reviewed\n\nsha256:{digest.upper()}  # grey test card\n"
                                           "*.jpg\nsub/*.webp # not ours\n")
    (photos / "sub").mkdir()
    (photos / "webp.img.png").rename(photos / "sub" / "x.webp")
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "--format", "jsonl")
    assert result.exit_code == 1  # png.img.png is not covered
    marks = {Path(row["input"]).name: (row["suppressed"], row["suppression_reason"]) for row in jsonl_rows(result.stdout)}
    where = photos / ".ipdscanignore"
    assert marks == {"gray.img.png": ("ignore-file", f"grey test card ({where}:3)"),
                     "jpeg.jpg": ("ignore-file", f"{where}:4"),
                     "png.img.png": ("", ""), "x.webp": ("ignore-file", f"not ours ({where}:5)")}
    assert "3 suppressed" in result.stderr
    (tmp_path / "all").write_text("*\n")  # --ignore-file instead of the folder's own
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "--ignore-file",
                      tmp_path / "all", "-q")
    assert result.exit_code == 0 and "suppressed (ignore-file)" in result.stdout


def test_rows_that_are_not_findings_are_never_marked(photos, checkpoint, cli):
    (photos / ".ipdscanignore").write_text("*\n")
    make_image(photos / "broken.jpg", "corrupt_jpeg")
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "1", "--format", "jsonl", "-q", "--fail-on-error")
    assert result.exit_code == 2  # an error is not a finding: it is never suppressed
    assert {row["suppressed"] for row in jsonl_rows(result.stdout)} == {""}


@pytest.mark.parametrize("line,problem", [
    ("sha256:abc", "expected sha256:<64 hex digits>"),
    ("SHA256:" + "a" * 64, "expected sha256:<64 hex digits>"),
    ("photos/[ab.png", "an unclosed [ in the glob"),
    ("a\x07b.png", "a control character"),
])
def test_a_malformed_ignore_line_is_file_line_and_exit_2(photos, checkpoint, line, problem, cli):
    (photos / ".ipdscanignore").write_text(f"# fine\n*.jpg\n{line}\n")
    result = cli.scan(photos, "--weights", checkpoint)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{photos / '.ipdscanignore'}:3: {problem}" in result.stderr and len(result.stderr.splitlines()) == 1
    assert line not in result.stderr  # said by number, never echoed: the line may not be a rule at all


@pytest.mark.parametrize("line,problem", [
    ("sub/", "a rule ending with '/'"), ("./jpeg.jpg", "a './' in the rule"), ("!jpeg.jpg", "a rule starting with '!'"),
    ("sub\\x.jpg", "a backslash in the rule"), ("../photos/*", "a '..' in the rule"),
])
def test_gitignore_syntax_that_is_not_supported_is_an_error_not_a_dead_rule(photos, checkpoint, line, problem, cli):
    (photos / ".ipdscanignore").write_text(f"{line}  # reviewed\n")
    result = cli.scan(photos / "jpeg.jpg", "--weights", checkpoint)  # a file argument reads its folder's file too
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {photos / '.ipdscanignore'}:1: {problem}")
    assert line not in result.stderr and "reviewed" not in result.stderr  # the line is never echoed


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero", "outside"])
def test_an_ignore_file_linked_out_of_its_folder_is_refused_unread(photos, checkpoint, tmp_path, target, cli):
    (tmp_path / "outside").write_text("*\n")
    (photos / ".ipdscanignore").symlink_to(target if target.startswith("/") else tmp_path / target)
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "-q")
    assert result.exit_code == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert f"{photos / '.ipdscanignore'}: the ignore file is a link to a file outside {photos}" in result.stderr
    assert "PATH=" not in result.stderr


def test_ignore_files_are_capped_and_must_be_regular_files(photos, checkpoint, tmp_path, cli):
    big = tmp_path / "big.ignore"
    with open(big, "wb") as file:
        file.truncate(65 << 20)  # sparse: over the cap without writing it
    result = cli.scan(photos, "--weights", checkpoint, "--ignore-file", big)
    assert result.exit_code == 2 and "the ignore file is over 67,108,864 bytes" in result.stderr
    result = cli.scan(photos, "--weights", checkpoint, "--ignore-file", "/proc/self/environ")
    assert result.exit_code == 2 and "is a system file" in result.stderr and "PATH=" not in result.stderr


@pytest.mark.parametrize("make", ["link to /dev/zero", "fifo", "directory"])
def test_a_baseline_that_is_not_a_regular_file_is_refused_at_once(photos, checkpoint, tmp_path, make, cli):
    baseline = tmp_path / "b.jsonl"
    {"link to /dev/zero": lambda: baseline.symlink_to("/dev/zero"), "fifo": lambda: os.mkfifo(baseline),
     "directory": baseline.mkdir}[make]()
    result = cli.scan(photos, "--weights", checkpoint, "--baseline", baseline)
    assert result.exit_code == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert f"{baseline}: the baseline is" in result.stderr


def test_a_rule_covers_only_its_own_folder_and_never_a_url(photos, checkpoint, tmp_path, http_server, cli):
    trusted, untrusted = tmp_path / "trusted", tmp_path / "untrusted"
    trusted.mkdir(), untrusted.mkdir()
    make_image(trusted / "logo.jpg", "jpeg")
    make_image(untrusted / "x.jpg", "png")
    url = http_server.add("u.png", (photos / "png.img.png").read_bytes())
    (untrusted / ".ipdscanignore").write_text("*.jpg # reviewed\n*\n*/*\n/*\nlogo.jpg\n")
    (tmp_path / "urls.txt").write_text(url + "\n")
    result = cli.scan(trusted, untrusted, url, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0",
                      "--allow-private-urls", "--format", "jsonl")
    assert result.exit_code == 1, result.output
    marks = {row["input"]: row["suppression_reason"] for row in jsonl_rows(result.stdout)}
    assert marks == {str(trusted / "logo.jpg"): "", str(untrusted / "x.jpg"): f"reviewed ({untrusted / '.ipdscanignore'}:1)",
                     url: ""}
    # one rule however the scan is called: the nested file counts in a folder scan, and a file argument's folder
    # and the folders above it up to the current directory are read as a folder scan reads them
    (trusted / "sub").mkdir()
    make_image(trusted / "sub" / "hero.jpg", "webp")
    (trusted / "sub" / ".ipdscanignore").write_text("hero.jpg # the hero\n")
    (trusted / ".ipdscanignore").write_text("logo.jpg # the logo\n")
    os.chdir(trusted)
    for args in (["."], [trusted], ["logo.jpg", "sub/hero.jpg"], ["sub", "logo.jpg"]):
        result = cli.scan(*args, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0", "--format", "jsonl")
        assert result.exit_code == 0, (args, result.output)
        reasons = sorted(row["suppression_reason"].split(" (")[0] for row in jsonl_rows(result.stdout))
        assert reasons == ["the hero", "the logo"], args


def test_the_summary_counts_suppressed_findings_with_their_real_scores(photos, checkpoint, cli):
    (photos / ".ipdscanignore").write_text("* # reviewed\n")
    args = (photos, "--weights", checkpoint, "--threshold", "0", "--fail-on", "0")
    result = cli.scan(*args, "--format", "sarif", "-q")
    assert result.exit_code == 0, result.output
    assert {finding["suppressions"][0]["justification"] for finding in json.loads(result.stdout)["runs"][0]["results"]} \
        == {f"ignore-file: reviewed ({photos / '.ipdscanignore'}:1)"}  # the file and line that did it
    result = cli.scan(*args, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    top = max(jsonl_rows(result.stdout), key=lambda row: row["score"])
    assert "4 suppressed" in result.stderr and "highest score: 0.000" not in result.stderr
    assert f"suppressed findings: {top['input']} ({top['score']:.3f})" in result.stderr


def test_exclude_skips_files_entirely_where_an_ignore_rule_only_suppresses(photos, checkpoint, cli):
    (photos / ".ipdscanignore").write_text("png.img.png  # reviewed\n")
    result = cli.scan(photos, "--weights", checkpoint, "--threshold", "0", "--format", "jsonl",
                      "--exclude", "gray.*", "--exclude", "photos/*.jpg")
    assert result.exit_code == 0 and result.stderr.startswith("scanned 2 in "), result.output
    rows = {Path(row["input"]).name: row["suppressed"] for row in jsonl_rows(result.stdout)}
    assert rows == {"png.img.png": "ignore-file", "webp.img.png": ""}  # excluded: no row; ignored: a marked row
    # a file named on the command line (as pre-commit names them) is skipped too; an excluded folder's files are
    os.chdir(photos)
    result = cli.scan("jpeg.jpg", "webp.img.png", "--weights", checkpoint, "--format", "jsonl", "--exclude", "*.jpg")
    assert result.exit_code == 0 and [row["input"] for row in jsonl_rows(result.stdout)] == ["webp.img.png"]
    result = cli.invoke(["config"], env={"IPDSCAN_EXCLUDE": "*.jpg  vendor/*"})
    assert 'exclude = ["*.jpg", "vendor/*"]' in result.stdout and result.exit_code == 0


@pytest.mark.parametrize("glob,problem", [("vendor/", "a glob ending with '/'"), ("!x.png", "--exclude has no negation"),
                                          ("sha256:" + "a" * 64, "a sha256: rule belongs in an ignore file"),
                                          ("../x.png", "from the current directory down"), ("", "an empty glob")])
def test_a_bad_exclude_glob_is_one_line_and_exit_2(photos, checkpoint, glob, problem, cli):
    result = cli.scan(photos, "--weights", checkpoint, "--exclude", glob)
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.splitlines() == [f"error: --exclude {glob}: " + result.stderr.split(": ", 2)[2].strip()]
    assert problem in result.stderr


def test_a_found_config_file_cannot_exclude_but_a_named_one_can(photos, checkpoint, tmp_path, cli):
    Path("ipdscan.toml").write_text('exclude = ["*.png"]\nformat = "jsonl"\n')
    result = cli.scan(photos, "--weights", checkpoint, "-q")
    assert result.exit_code == 0 and len(jsonl_rows(result.stdout)) == len(KINDS)
    assert result.stderr.startswith(f"warning: {tmp_path / 'ipdscan.toml'} sets exclude, ignored")
    result = cli.invoke(["--config", "ipdscan.toml", "scan", photos, "--weights", checkpoint, "--workers", "0"])
    assert result.exit_code == 0 and [Path(row["input"]).name for row in jsonl_rows(result.stdout)] == ["jpeg.jpg"]
    assert 'ipdscan.toml narrowed this scan: exclude = ["*.png"]' in result.stderr


@pytest.mark.parametrize("content,name,message", [
    ("not json\n", "old.jsonl", "old.jsonl:1: not JSON"),
    ('{"input": "a.png", "status": "ok", "score": 2, "label": "ai"}\n', "old.jsonl",
     "old.jsonl:1: not an ipdscan report row (score 2"),  # the rule merge and --resume read rows by
    ('{"runs": 3}', "old.sarif", "not an ipdscan sarif report"),
    ('{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep"}}, "results": []}]}', "semgrep.sarif",
     "semgrep.sarif: a SARIF log written by 'semgrep', not by ipdscan; a baseline is an earlier ipdscan report"),
    ("input\n", "old.csv", "a baseline is a .jsonl, .json or .sarif report"),
])
def test_an_unusable_baseline_is_exit_2(photos, checkpoint, tmp_path, content, name, message, cli):
    (tmp_path / name).write_text(content)
    result = cli.scan(photos, "--weights", checkpoint, "--baseline", tmp_path / name)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    result = cli.scan(photos, "--weights", checkpoint, "--baseline", tmp_path / "missing.jsonl")
    assert result.exit_code == 2 and "cannot read the baseline" in result.stderr


# --- configuration ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_precedence_is_flag_then_environment_then_file_then_default(photos, checkpoint, tmp_path, cli):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.ipdscan]\nfail-on = 0.0\n'
                                             'format = "jsonl"\n')
    result = cli.scan(photos, "-q", "--weights", checkpoint)
    assert result.exit_code == 1 and len(jsonl_rows(result.stdout)) == len(KINDS)  # the file's format and fail-on
    env = {"IPDSCAN_FAIL_ON": "1", "IPDSCAN_WEIGHTS": str(checkpoint)}
    assert cli.scan(photos, "-q", env=env).exit_code == 0  # the environment over the file
    assert cli.scan(photos, "-q", "--fail-on", "0", env=env).exit_code == 1  # the flag over both
    config = cli.invoke(["config"], env={"IPDSCAN_FAIL_ON": "1", "IPDSCAN_CI_VENV": "/x"})
    assert config.exit_code == 0
    lines = {line.split(" = ")[0].lstrip("# "): line for line in config.stdout.splitlines()}
    assert lines["fail-on"].split("#")[0].strip() == "fail-on = 1.0" and lines["fail-on"].endswith("# IPDSCAN_FAIL_ON")
    assert lines["format"].endswith(f"# {tmp_path / 'pyproject.toml'} [tool.ipdscan]")
    assert lines["batch-size"].endswith("# default") and lines["threshold"].startswith("# threshold =")


def test_a_found_config_file_cannot_choose_where_to_write_what_to_trust_or_how_much_to_scan(photos, checkpoint,
                                                                                            tmp_path, cli):
    (tmp_path / "victim.txt").write_text("precious\n")
    os.chdir(photos)
    Path("pyproject.toml").write_text('[tool.ipdscan]\nout = "../victim.txt"\nformat = "csv"\nshard = "1/4"\n'
                                      f'weights = "{checkpoint}"\nallow-private-urls = true\nmax-mb = 0.001\n')
    result = cli.scan("jpeg.jpg", "--weights", checkpoint, "--quiet", "--fail-on", "0.9")
    assert result.exit_code in (0, 1) and (tmp_path / "victim.txt").read_text() == "precious\n"
    assert result.stdout.startswith("input,")  # format is the file's to choose: the report on stdout
    assert result.stderr.splitlines()[0] == (
        f"warning: {photos / 'pyproject.toml'} [tool.ipdscan] sets out, shard, allow-private-urls, max-mb, "
        "ignored: a config file that was found, not named, may not choose where to write, what to trust or how "
        "much to scan; to use it, run ipdscan --config FILE scan ...")
    config = cli.invoke(["config"]).stdout
    assert "# out =" in config and f"ignored: {photos / 'pyproject.toml'} [tool.ipdscan]" in config
    # named, it is trusted in full; the header says where each setting came from, the summary what narrowed it
    Path("pyproject.toml").write_text('[tool.ipdscan]\nout = "../victim.jsonl"\nshard = "1/1"\nmax-mb = 10\n')
    result = cli.invoke(["--config", "pyproject.toml", "scan", "jpeg.jpg", "--workers", "0", "--weights", checkpoint])
    assert result.exit_code == 0, result.output
    header = json.loads((tmp_path / "victim.jsonl.header.json").read_text())
    where = "pyproject.toml [tool.ipdscan]"
    assert header["settings"]["out"] == {"value": "../victim.jsonl", "source": where}
    assert header["settings"]["weights"] == {"value": str(checkpoint), "source": "command line"}
    assert header["settings"]["hidden"] == {"value": False, "source": "default"}
    assert f"warning: {where} narrowed this scan: shard = \"1/1\", max-mb = 10" in result.stderr


def test_ipdscan_toml_is_found_upwards_and_wins_over_pyproject_there(photos, tmp_path, cli):
    (tmp_path / "ipdscan.toml").write_text("threshold = 0.7\ncrops = 3\n")
    (tmp_path / "pyproject.toml").write_text("[tool.ipdscan]\nthreshold = 0.2\n")
    os.chdir(photos)
    config = cli.invoke(["config"])
    assert "threshold = 0.7" in config.stdout and "crops = 3" in config.stdout
    assert str(tmp_path / "ipdscan.toml") in config.stdout


@pytest.mark.parametrize("content,env,message", [
    ("fail_onn = 0.9\n", {}, "ipdscan.toml: unknown setting 'fail_onn'; the settings are"),
    ("fail-on = 2.0\n", {}, "ipdscan.toml: fail-on: "),  # out of range, in typer's words
    ("format = 'xml'\n", {}, "ipdscan.toml: format:"),
    ("fail-on = [1]\n", {}, "expected a single value"),
    ("fail-on = \n", {}, "not valid TOML"),
    ("", {"IPDSCAN_BATCH_SIZE": "many"}, "IPDSCAN_BATCH_SIZE: batch-size: "),
])
def test_bad_settings_are_errors_naming_where(photos, content, env, message, cli):
    Path("ipdscan.toml").write_text(content)
    for command in (["config"], ["scan", str(photos)]):
        result = cli.invoke(command, env=env)
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_an_empty_variable_is_unset(photos, cli):
    result = cli.invoke(["config"], env={"IPDSCAN_FAIL_ON": "", "IPDSCAN_FORMAT": "", "IPDSCAN_BATCH_SIZE": ""})
    assert result.exit_code == 0 and result.stderr == "", result.output
    lines = {line.split(" = ")[0].lstrip("# "): line for line in result.stdout.splitlines()}
    assert lines["fail-on"].startswith("# fail-on =") and lines["fail-on"].endswith("# default")
    assert lines["batch-size"].split("#")[0].strip() == "batch-size = 32" and lines["batch-size"].endswith("# default")


@pytest.mark.parametrize("args", [["--help"], ["scan", "--help"], ["merge", "--help"], ["report", "--help"],
                                  ["explain", "--help"]])
def test_a_bad_setting_breaks_neither_help_nor_other_commands(photos, args, cli):
    Path("ipdscan.toml").write_text("fail-on = 2.0\n")
    result = cli.invoke(args, env={"IPDSCAN_BATCH_SIZE": "many"})
    assert result.exit_code == 0 and result.stderr == "" and "Usage:" in result.stdout, result.output


def test_a_bad_setting_is_an_error_only_for_the_commands_it_sets(photos, tmp_path, write_report, cli):
    from ipdscan.scanning.result import Result
    report = write_report(tmp_path / "old.jsonl", [Result("a.png", score=0.2, label="real", sha256="ab" * 32)])
    env = {"IPDSCAN_FAIL_ON": "lots"}
    result = cli.invoke(["report", report, "--out", tmp_path / "old.csv"], env=env)
    assert result.exit_code == 0 and result.stderr.startswith("wrote 1 rows") and "IPDSCAN" not in result.stderr
    assert (tmp_path / "old.csv").read_text().splitlines()[1].startswith("a.png,")
    for command in (["config"], ["scan", str(photos)]):
        result = cli.invoke(command, env=env)
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert result.stderr.splitlines() == ["error: IPDSCAN_FAIL_ON: fail-on: Input should be a valid number, "
                                              "unable to parse string as a number"]


@pytest.mark.parametrize("name,content,message", [
    ("pyproject.toml", b"tool = 5\n", "pyproject.toml: [tool] must be a table, not an integer"),
    ("pyproject.toml", b'tool = "ipdscan"\n', "pyproject.toml: [tool] must be a table, not a string"),
    ("pyproject.toml", b"[tool]\nipdscan = 5\n", "pyproject.toml: [tool.ipdscan] must be a table"),
    ("pyproject.toml", b'[tool.ipdscan]\nformat = "caf\xe9"\n', "pyproject.toml:2: the config file is not UTF-8 text"),
    ("ipdscan.toml", b"\xff\xfefail-on = 0.5\n", "ipdscan.toml:1: the config file is not UTF-8 text"),
])
def test_a_malformed_config_file_is_one_line_naming_it(photos, name, content, message, cli):
    Path(name).write_bytes(content)
    for args in (["config"], ["scan", str(photos)], ["--config", name, "config"]):
        result = cli.invoke(args)
        assert result.exit_code == 2 and result.stdout == "", result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(message), result.stderr


# --- instant start ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["config"], ["scan", "x", "--out", "r.xlsx"], ["report", "--help"],
                                  pytest.param(["scan", "--help"], marks=pytest.mark.slow),
                                  pytest.param(["scan", "--batch-size", "0", "x"], marks=pytest.mark.slow),
                                  pytest.param(["scan", "x", "--shard", "9/2"], marks=pytest.mark.slow),
                                  pytest.param(["scan", "x", "--ray-actors", "2"], marks=pytest.mark.slow)])
def test_help_config_and_argument_errors_never_import_torch_or_ray(tmp_path, args, run_cli):
    proc = run_cli.python("-X", "importtime", "-m", "ipdscan", *args, cwd=tmp_path)
    assert proc.returncode == (0 if args[-1] in ("--help", "config") else 2), proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [name for name in imported if name.split(".")[0] in ("torch", "torchvision", "numpy", "ray", "pyarrow")]


def test_version_names_torch_cuda_and_the_default_weights(cli):
    result = cli.invoke(["--version"])
    assert result.exit_code == 0
    version, torch_line, weights_line = result.stdout.splitlines()
    assert version.startswith("ipdscan ") and torch_line.startswith("torch ") and "CUDA" in torch_line
    assert weights_line.startswith("default weights ") and len(weights_line.split()[-1]) == 64


@pytest.mark.slow
def test_help_fits_80_columns_and_lists_choices(tmp_path, run_cli):
    for command in (["--help"], ["scan", "--help"], ["merge", "--help"], ["report", "--help"], ["eval", "--help"]):
        proc = run_cli.python("-m", "ipdscan", *command, cwd=tmp_path)
        assert proc.returncode == 0
        lines = [line for line in proc.stdout.splitlines() if not line.startswith("    ipdscan ")]  # examples
        assert max(map(len, lines)) <= 80, max(lines, key=len)
        assert "…" not in proc.stdout and "<bool>" not in proc.stdout
    scan_help = run_cli.python("-m", "ipdscan", "scan", "--help", cwd=tmp_path).stdout
    assert "<table|csv|jsonl|json|sarif|html>" in scan_help and "<auto|workers|device>" in scan_help
    assert "--fail-on-evidence" in scan_help
    assert "named before the command, trusted in full: ipdscan --config FILE scan ..." in " ".join(scan_help.split())
    assert ".sarif" in run_cli.python("-m", "ipdscan", "merge", "--help", cwd=tmp_path).stdout
    assert "--show-completion" in run_cli.python("-m", "ipdscan", "--help", cwd=tmp_path).stdout


# --- Windows: no fcntl ----------------------------------------------------------------------------------------

WINDOWS_LIKE = '''
import errno, sys, types
import fcntl as real_fcntl
import getpass, subprocess  # noqa: E401 - modules that take a module named msvcrt to mean Windows: loaded first
sys.modules["fcntl"] = None  # "import fcntl" now raises ImportError, as on Windows
msvcrt = types.ModuleType("msvcrt")  # msvcrt.locking's contract, played by flock: OSError EACCES when taken
msvcrt.LK_UNLCK, msvcrt.LK_NBLCK = 0, 2
def locking(fd, mode, nbytes):
    try:
        real_fcntl.flock(fd, real_fcntl.LOCK_EX | real_fcntl.LOCK_NB if mode == msvcrt.LK_NBLCK else real_fcntl.LOCK_UN)
    except BlockingIOError:
        raise OSError(errno.EACCES, "Permission denied") from None
msvcrt.locking = locking
sys.modules["msvcrt"] = msvcrt
'''


def test_the_report_lock_works_where_fcntl_is_missing(tmp_path, run_cli):
    script = WINDOWS_LIKE + '''
import ipdscan.cli.commands
from ipdscan.reports import lock as report_lock
assert report_lock.fcntl is None
first, second = report_lock.ReportLock("r.jsonl"), report_lock.ReportLock("r.jsonl")
first.acquire()
try:
    second.acquire()
    raise SystemExit("the second lock was granted")
except report_lock.ReportBusy as exc:
    print(exc)
first.release()
import os
assert not os.path.exists("r.jsonl.lock")
second.acquire()
second.release()
sys.argv = ["ipdscan", "--help"]
ipdscan.cli.commands.main()
'''
    proc = run_cli.python("-c", script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "another scan is writing r.jsonl" in proc.stdout and "Usage:" in proc.stdout
