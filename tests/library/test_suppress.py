"""suppress.py's compiled rule table: the same answer as trying every glob in order, however many there are."""
from fnmatch import fnmatchcase

from ipdscan.reports import suppress
from ipdscan.reports.suppress import GlobTable


def test_a_compiled_table_finds_the_first_matching_glob_of_any_kind(monkeypatch):
    monkeypatch.setattr(suppress, "GLOBS_PER_PATTERN", 3)  # several joined chunks from a few headless globs
    globs = ["logo.png", "*.gif", "shot-*.jpg", "*-7.jpg", "shot-1?.jpg", "a[bc].png", "*", "shot-12.jpg", "*x*"]
    table = GlobTable(enumerate(globs))
    for text in ["logo.png", "shot-12.jpg", "x-7.jpg", "ab.png", "anim.gif", "other.webp", "shot-7.jpg", ""]:
        expected = next((index for index, glob in enumerate(globs) if fnmatchcase(text, glob)), None)
        assert table.first(text) == expected, text
    assert GlobTable(enumerate(["a/*.png", "b.png"])).first("c.png") is None
