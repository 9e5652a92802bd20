"""suppress.py: the compiled rule table (the same answer as trying every glob in order, however many there are)
and baselines (the same files covered whatever the format; only ipdscan's own reports)."""
import json
from fnmatch import fnmatchcase

import pytest

from ipdscan.reports import suppress
from ipdscan.reports.suppress import GlobTable, SuppressionError, read_baseline


def test_a_compiled_table_finds_the_first_matching_glob_of_any_kind(monkeypatch):
    monkeypatch.setattr(suppress, "GLOBS_PER_PATTERN", 3)  # several joined chunks from a few headless globs
    globs = ["logo.png", "*.gif", "shot-*.jpg", "*-7.jpg", "shot-1?.jpg", "a[bc].png", "*", "shot-12.jpg", "*x*"]
    table = GlobTable(enumerate(globs))
    for text in ["logo.png", "shot-12.jpg", "x-7.jpg", "ab.png", "anim.gif", "other.webp", "shot-7.jpg", ""]:
        expected = next((index for index, glob in enumerate(globs) if fnmatchcase(text, glob)), None)
        assert table.first(text) == expected, text
    assert GlobTable(enumerate(["a/*.png", "b.png"])).first("c.png") is None


# --- baselines ------------------------------------------------------------------------------------------------

def baseline_rows():
    from ipdscan.scanning.result import Result
    return [Result("ai.png", score=0.9, label="ai", sha256="a" * 64),
            Result("real.png", score=0.2, label="real", sha256="b" * 64),
            Result("declared.png", score=0.1, label="real", sha256="c" * 64, evidence=["png:parameters"]),
            Result.failed("broken.png", "decode_error", "truncated")]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".sarif"])
def test_a_baseline_covers_the_same_files_whatever_its_format(tmp_path, suffix, write_report):
    """A baseline is the earlier report's findings (labelled ai, or declaring AI generation), which is all a
    .sarif log holds: a file the earlier scan scored real is no finding it reported, in any format."""
    path = write_report(tmp_path / f"old{suffix}", baseline_rows())
    assert read_baseline(path) == {"a" * 64, "c" * 64}


def test_another_tools_sarif_is_refused_as_a_baseline(tmp_path, write_report):
    path = write_report(tmp_path / "ours.sarif", baseline_rows())
    log = json.loads(path.read_text())
    log["runs"][0]["tool"]["driver"]["name"] = "semgrep"
    (tmp_path / "theirs.sarif").write_text(json.dumps(log))
    with pytest.raises(SuppressionError) as caught:
        read_baseline(tmp_path / "theirs.sarif")
    assert str(caught.value) == (f"{tmp_path / 'theirs.sarif'}: a SARIF log written by 'semgrep', not by ipdscan; "
                                 "a baseline is an earlier ipdscan report")
    log["runs"][0]["tool"] = {}
    (tmp_path / "theirs.sarif").write_text(json.dumps(log))
    with pytest.raises(SuppressionError, match="a SARIF log written by another tool, not by ipdscan"):
        read_baseline(tmp_path / "theirs.sarif")
