import hashlib
import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
import tomllib

import ipdscan
from ipdscan.reports.sarif import AI_SCORE, PROVENANCE_AI, RULES, SCAN_ERROR, SarifWriter
from ipdscan.scanning.result import Result

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())
HEADER = {"tool": "ipdscan", "version": "1.2.3", "model": "ipd-test", "variant": "layer2", "weights_sha256": "ab" * 32,
          "threshold": 0.5, "device": "cpu", "start_time": "2024-01-02T03:04:05+00:00", "inputs": ["photos"]}
SUMMARY = {"end_time": "2024-01-02T03:05:00+00:00", "interrupted": False, "scanned": 9, "errors": 2}


def validate(document: dict):
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(error.absolute_path)}: {error.message}" for error in errors[:5])


def scored(input: str, score: float, evidence: str = "", detail: str = "", threshold: float = 0.5, **fields) -> Result:
    """A scored row, labelled at ``threshold``; ``evidence`` and ``detail`` in their report form (codes; JSON)."""
    return Result(input=input, score=score, label="ai" if score >= threshold else "real", sha256=fields.pop(
        "sha256", f"{abs(hash(input)):064x}"[-64:]), bytes=1234, format="PNG", width=64, height=48,
        evidence=[code for code in evidence.split(";") if code], evidence_detail=json.loads(detail) if detail else {},
        **fields)


@pytest.fixture
def write_report(write_report):
    """conftest's report writer for this file's HEADER (at ``threshold``) -> the SARIF log, read back."""
    return lambda path, results, root=None, threshold=0.5, summary=SUMMARY: json.loads(
        write_report(path, results, {**HEADER, "threshold": threshold}, summary, root=root).read_text())


def results_by_uri(document: dict) -> dict[str, list[tuple[str, str]]]:
    run = document["runs"][0]
    found = {}
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        found.setdefault(location["uri"], []).append((result["ruleId"], result["level"]))
    return found


@pytest.fixture
def sarif_scan(tmp_path, monkeypatch, write_report):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    c2pa_detail = json.dumps({"c2pa": {"validation_state": "Valid", "digital_source_types": ["x"]}})
    results = [
        scored("photos/a b.png", 0.95),
        scored("photos/sub/warn.png", 0.7),
        scored("photos/real.png", 0.2),
        scored("photos/declared.png", 0.3, "c2pa:present;c2pa:trainedAlgorithmicMedia", c2pa_detail),
        scored(str(root / "both.png"), 0.91, "png:parameters", '{"png": {"parameters": "Steps: 20"}}'),
        scored("photos/camera.jpg", 0.1, "c2pa:digitalCapture;c2pa:present", c2pa_detail),
        Result.failed("photos/broken.jpg", "decode_error", "corrupt or truncated JPEG", sha256="cd" * 32, bytes=10),
        Result.failed("https://example.com/x.png?size=2", "http_error", "HTTP 404 Not Found"),
        scored(str(tmp_path / "elsewhere.png"), 0.99),
    ]
    document = write_report(tmp_path / "report.sarif", results, root=root)
    return tmp_path, document


def test_report_validates_against_the_sarif_schema(sarif_scan):
    _, document = sarif_scan
    validate(document)
    assert document["version"] == "2.1.0"


def test_rule_ids_and_levels_follow_the_score_bands_and_evidence(sarif_scan):
    tmp_path, document = sarif_scan
    assert results_by_uri(document) == {
        "a%20b.png": [(AI_SCORE, "error")],
        "sub/warn.png": [(AI_SCORE, "warning")],
        "declared.png": [(PROVENANCE_AI, "error")],
        "both.png": [(AI_SCORE, "error"), (PROVENANCE_AI, "error")],
        "broken.jpg": [(SCAN_ERROR, "note")],
        "urls/example.com/x.png_" + hashlib.sha256(b"https://example.com/x.png?size=2").hexdigest()[:8]:
            [(SCAN_ERROR, "note")],
        (tmp_path / "elsewhere.png").as_uri(): [(AI_SCORE, "error")],
    }  # real.png (under the threshold) and camera.jpg (provenance that declares no AI) have no result


def test_locations_artifacts_and_fingerprints(sarif_scan):
    tmp_path, document = sarif_scan
    run = document["runs"][0]
    assert run["originalUriBaseIds"] == {"SRCROOT": {"uri": (tmp_path / "photos").as_uri() + "/"}}
    artifacts = run["artifacts"]
    assert len(artifacts) == 7  # one per input with a result
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        artifact = artifacts[location["index"]]
        assert artifact["location"]["uri"] == location["uri"]
        is_local_under_root = not location["uri"].startswith(("urls/", "file:"))
        assert (location.get("uriBaseId") == "SRCROOT") == is_local_under_root
        if "hashes" in artifact:
            assert result["partialFingerprints"] == {"sha256/v1": artifact["hashes"]["sha-256"]}
        else:
            assert "partialFingerprints" not in result
    broken = next(a for a in artifacts if a["location"]["uri"] == "broken.jpg")
    assert broken["hashes"] == {"sha-256": "cd" * 32} and broken["length"] == 10
    assert next(a for a in artifacts if a["location"]["uri"] == "a%20b.png")["mimeType"] == "image/png"
    url = next(a for a in artifacts if a["location"]["uri"].startswith("urls/"))
    assert url["location"]["properties"] == {"url": "https://example.com/x.png?size=2"}


def test_messages_and_properties(sarif_scan):
    _, document = sarif_scan
    results = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"]): r
               for r in document["runs"][0]["results"]}
    score = results[("a%20b.png", AI_SCORE)]
    assert "0.950" in score["message"]["text"] and score["properties"]["score"] == 0.95
    provenance = results[("declared.png", PROVENANCE_AI)]
    assert "c2pa:trainedAlgorithmicMedia" in provenance["message"]["text"]
    assert "0.300" in provenance["message"]["text"]
    assert provenance["properties"]["evidence"] == ["c2pa:present", "c2pa:trainedAlgorithmicMedia"]
    assert provenance["properties"]["evidence_detail"]["c2pa"]["validation_state"] == "Valid"
    error = results[("broken.jpg", SCAN_ERROR)]
    assert "corrupt or truncated JPEG" in error["message"]["text"]
    assert error["properties"]["error_code"] == "decode_error"


def test_tool_rules_and_invocation(sarif_scan):
    _, document = sarif_scan
    run = document["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ipdscan" and driver["version"] == "1.2.3"
    assert [rule["id"] for rule in driver["rules"]] == [AI_SCORE, PROVENANCE_AI, SCAN_ERROR]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["startTimeUtc"] == "2024-01-02T03:04:05Z"
    assert invocation["endTimeUtc"] == "2024-01-02T03:05:00Z"
    assert run["properties"]["weights_sha256"] == "ab" * 32


def test_report_appears_whole_at_close_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "report.sarif"
    writer = SarifWriter(path, HEADER, root=tmp_path)
    writer.write(scored(str(tmp_path / "a.png"), 0.99))
    writer.flush()
    assert not path.exists()
    writer.close(SUMMARY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.sarif"]


def test_failed_close_leaves_no_report_and_no_temporary_file(tmp_path):
    path = tmp_path / "report.sarif"
    writer = SarifWriter(path, HEADER, root=tmp_path)
    writer.write(scored(str(tmp_path / "a.png"), 0.99))
    with pytest.raises(TypeError):
        writer.close({**SUMMARY, "unserialisable": object()})
    assert list(tmp_path.iterdir()) == []


def test_empty_and_interrupted_scan_is_still_a_valid_log(tmp_path, write_report):
    document = write_report(tmp_path / "report.sarif", [scored("x.png", 0.1)], root=tmp_path,
                            summary={**SUMMARY, "interrupted": True})
    validate(document)
    run = document["runs"][0]
    assert run["results"] == [] and run["artifacts"] == []
    assert run["invocations"][0]["executionSuccessful"] is False


def test_threshold_above_the_error_band(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    document = write_report(tmp_path / "report.sarif", [scored("low.png", 0.93, threshold=0.95),
                                                        scored("high.png", 0.97, threshold=0.95)],
                            root=tmp_path, threshold=0.95)
    assert results_by_uri(document) == {"high.png": [(AI_SCORE, "error")]}


def test_findings_follow_the_rows_labels_when_no_threshold_is_known(tmp_path, monkeypatch):
    """A merge of parts without headers knows no threshold: the rows' labels, not a default 0.5, say what is flagged."""
    monkeypatch.chdir(tmp_path)
    writer = SarifWriter(tmp_path / "report.sarif", {"tool": "ipdscan", "version": "0"}, root=tmp_path)
    for result in (scored("low.png", 0.35, threshold=0.3), scored("real.png", 0.6, threshold=0.7)):
        writer.write(result)
    writer.close(SUMMARY)
    document = json.loads((tmp_path / "report.sarif").read_text())
    validate(document)
    assert results_by_uri(document) == {"low.png": [(AI_SCORE, "warning")]}
    assert "threshold" not in document["runs"][0]["results"][0]["message"]["text"]


def test_many_results_stream_through(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    results = (scored(f"img{i:05d}.png", 0.5 + (i % 50) / 100, "png:parameters" if i % 7 == 0 else "")
               for i in range(2000))
    document = write_report(tmp_path / "report.sarif", results, root=tmp_path)
    run = document["runs"][0]
    assert len(run["artifacts"]) == 2000
    assert len(run["results"]) == 2000 + len(range(0, 2000, 7))
    assert [a["location"]["uri"] for a in run["artifacts"][:2]] == ["img00000.png", "img00001.png"]


def test_rules_have_stable_ids_and_default_levels():
    assert {rule["id"]: rule["defaultConfiguration"]["level"] for rule in RULES} == {
        AI_SCORE: "warning", PROVENANCE_AI: "error", SCAN_ERROR: "note"}


def test_evidence_found_in_a_file_becomes_a_provenance_finding(tmp_path, write_report):
    from ipdscan.evidence import find_evidence

    from evidence_files import A1111, png_with_text

    data = png_with_text(parameters=A1111)
    result = Result(input=str(tmp_path / "gen.png"), score=0.12, label="real", sha256="ef" * 32, bytes=len(data),
                    format="PNG")
    evidence = find_evidence(data)
    result.evidence, result.evidence_detail = evidence.codes, evidence.detail
    document = write_report(tmp_path / "report.sarif", [result], root=tmp_path)
    validate(document)
    (finding,) = document["runs"][0]["results"]
    assert (finding["ruleId"], finding["level"]) == (PROVENANCE_AI, "error")
    assert finding["properties"]["evidence_detail"]["png"]["parameters"] == A1111


def test_a_file_name_that_is_not_utf8_gives_a_valid_utf8_log(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xe9 \xff.png")  # Latin-1 bytes: Python carries them as lone surrogates
    results = [scored(name, 0.95), Result.failed(os.fsdecode(b"bad\xff.jpg"), "decode_error",
                                                 f"{os.fsdecode(b'bad' + bytes([0xff]))}.jpg: corrupt")]
    document = write_report(tmp_path / "report.sarif", results, root=tmp_path,
                            summary={**SUMMARY, "inputs": [name]})
    validate(document)
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in document["runs"][0]["results"]]
    assert uris == ["caf%E9%20%FF.png", "bad%FF.jpg"]  # the name's bytes, percent-encoded
    error = document["runs"][0]["results"][1]["message"]["text"]
    assert "bad\ufffd.jpg: corrupt" in error  # shown with replacement characters
    (tmp_path / "report.sarif").read_bytes().decode("utf-8")


def test_non_file_inputs_are_their_own_uris(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    results = [Result.failed("HTTPS://Example.com/a b.png", "http_404", "HTTP 404"),
               Result.failed("ftp://example.com/x.png", "unsupported_scheme", "unsupported URL scheme 'ftp'"),
               Result.failed("https://例え.jp/画像.png", "connection_error", "refused"),
               Result.failed("javascript:alert(1)", "unsupported_scheme", "unsupported URL scheme 'javascript'")]
    document = write_report(tmp_path / "report.sarif", results, root=tmp_path)
    validate(document)
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in document["runs"][0]["results"]]
    # Code scanning refuses locations that are not files: a stable relative pseudo-path, the URL in a property
    assert locations == [
        {"uri": "urls/example.com/a%20b.png", "properties": {"url": "HTTPS://Example.com/a%20b.png"}, "index": 0},
        {"uri": "urls/example.com/x.png", "properties": {"url": "ftp://example.com/x.png"}, "index": 1},
        {"uri": "urls/%E4%BE%8B%E3%81%88.jp/%E7%94%BB%E5%83%8F.png",
         "properties": {"url": "https://%E4%BE%8B%E3%81%88.jp/%E7%94%BB%E5%83%8F.png"}, "index": 2},
        {"uri": "urls/javascript/" + hashlib.sha256(b"javascript:alert(1)").hexdigest()[:16],
         "properties": {"url": "javascript:alert(1)"}, "index": 3}]


def test_url_pseudo_paths_are_stable_distinct_and_stay_under_urls(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    urls = ["https://a.example/x/../../etc/p.png", "https://a.example:8443/p.png?size=1",
            "https://a.example:8443/p.png?size=2", "https://***@a.example/", "https://a.example:bad/"]
    document = write_report(tmp_path / "report.sarif", [Result.failed(url, "http_404", "x") for url in urls])
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in document["runs"][0]["results"]]
    assert uris[0] == "urls/a.example/x/_/_/etc/p.png"
    assert uris[1].startswith("urls/a.example_8443/p.png_") and uris[1] != uris[2]
    assert uris[3] == "urls/a.example/_" and uris[4].startswith("urls/https/")
    again = write_report(tmp_path / "again.sarif", [Result.failed(url, "http_404", "x") for url in urls])
    assert uris == [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in again["runs"][0]["results"]]


def test_suppressed_findings_carry_sarif_suppressions(tmp_path, monkeypatch, write_report):
    monkeypatch.chdir(tmp_path)
    flagged = scored("a.png", 0.95, suppressed="baseline", suppression_reason="already reported in old.sarif")
    document = write_report(tmp_path / "report.sarif", [flagged, scored("b.png", 0.95)])
    validate(document)
    first, second = document["runs"][0]["results"]
    assert first["suppressions"] == [{"kind": "external", "status": "accepted",
                                      "justification": "baseline: already reported in old.sarif"}]
    assert "suppressions" not in second


def test_the_tool_names_its_home_page_as_pyproject_does():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Homepage"] == ipdscan.HOMEPAGE
    assert SarifWriter(Path("x.sarif"), HEADER)._driver()["informationUri"] == ipdscan.HOMEPAGE


def test_the_log_gets_the_mode_other_reports_get(tmp_path, write_report):
    umask = os.umask(0o022)
    try:
        write_report(tmp_path / "report.sarif", [scored(str(tmp_path / "a.png"), 0.99)], root=tmp_path)
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "report.sarif").stat().st_mode) == 0o644
