import io
import os
import shutil
import tracemalloc

import pytest
from PIL import Image

from ipdscan.scanning.formats import signature_format
from ipdscan.scanning.item import Item
from ipdscan.scanning.local_files import open_regular, os_error_code
from ipdscan.scanning.shards import shard_filter
from ipdscan.scanning.sources import iter_items, url_item
from ipdscan.scanning.urls import url_problem
from ipdscan.scanning.walk import SortedNames

from filesystem import finishes, posix, run_unprivileged, unblock_fifo


def image_bytes(format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 60)).save(buffer, format)
    return buffer.getvalue()


def listed(inputs, **kwargs) -> list[tuple[str, str, str]]:
    return [(item.input, item.kind, item.error_code) for item in iter_items(inputs, **kwargs)]


@pytest.fixture
def tree(tmp_path):
    """photos/ with nested, hidden, sniffed, skipped and hostile entries."""
    root = tmp_path / "photos"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".hidden_dir").mkdir()
    (root / "b" / "z.JPG").write_bytes(image_bytes("JPEG"))
    (root / "b" / "deeper" / "one.webp").write_bytes(image_bytes("WEBP"))
    (root / "a" / "pic.png").write_bytes(image_bytes())
    (root / "a" / "notes.txt").write_text("not an image, not a URL list inside a directory\n")
    (root / "a" / "data.bin").write_bytes(b"\x00\x01 random bytes that are no image at all")
    (root / "a" / "noext").write_bytes(image_bytes())  # a PNG without an extension: sniffed
    (root / "a" / "tiny.gif").write_bytes(b"")  # named like an image: listed, the decoder reports it empty
    (root / ".hidden.png").write_bytes(image_bytes())
    (root / ".hidden_dir" / "in_hidden.png").write_bytes(image_bytes())
    (root / "c.bmp").write_bytes(image_bytes("BMP"))
    return root


def test_directory_walk_is_sorted_recursive_and_skips_hidden_and_non_images(tree):
    expected = [f"{tree}/a/noext", f"{tree}/a/pic.png", f"{tree}/a/tiny.gif",
                f"{tree}/b/deeper/one.webp", f"{tree}/b/z.JPG", f"{tree}/c.bmp"]
    items = list(iter_items([str(tree)]))
    assert [item.input for item in items] == expected
    assert all(item.kind == "file" and not item.error_code for item in items)
    assert listed([str(tree)]) == listed([str(tree)])  # deterministic


def test_hidden_included_on_request(tree):
    inputs = [item.input for item in iter_items([str(tree)], hidden=True)]
    assert f"{tree}/.hidden.png" in inputs
    assert f"{tree}/.hidden_dir/in_hidden.png" in inputs


def test_explicitly_named_files_are_items_whatever_they_hold(tree):
    named = [str(tree / "a" / "data.bin"), str(tree / ".hidden.png")]
    assert listed(named) == [(named[0], "file", ""), (named[1], "file", "")]


def test_sniffing_recognises_formats_and_rejects_lookalikes():
    for format in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"):
        assert signature_format(image_bytes(format)[:32]), format
    assert signature_format(b"\x00\x00\x00\x1cftypheic" + bytes(20))
    assert signature_format(b"\x00\x00\x00\x1cftypavif" + bytes(20))
    assert not signature_format(b"\x00\x00\x00\x1cftypisom" + bytes(20))  # an MP4
    assert not signature_format(b"BMW 320i service history, 2019 to 2024")  # starts "BM", no DIB header
    assert not signature_format(b"")
    assert not signature_format(b"%PDF-1.7\n")


@posix
def test_fifo_named_like_an_image_is_a_row_and_is_never_opened(tmp_path, opened_paths):
    (tmp_path / "real.png").write_bytes(image_bytes())
    fifo, quiet_fifo = tmp_path / "x.jpg", tmp_path / "pipe"
    os.mkfifo(fifo)
    os.mkfifo(quiet_fifo)
    try:
        items = finishes(lambda: list(iter_items([str(tmp_path)])))
        named = finishes(lambda: list(iter_items([str(fifo)])))
        opened = list(opened_paths)
    finally:
        unblock_fifo(fifo)
        unblock_fifo(quiet_fifo)
    assert [(i.input, i.error_code) for i in items] == [(str(tmp_path / "real.png"), ""), (str(fifo), "not_a_file")]
    assert [(i.input, i.error_code) for i in named] == [(str(fifo), "not_a_file")]
    assert str(fifo) not in opened and str(quiet_fifo) not in opened


@posix
def test_open_regular_refuses_a_fifo_without_waiting(tmp_path):
    # The guard for a file swapped for a FIFO between stat and open: open() must not wait for a writer.
    fifo = tmp_path / "swapped.png"
    os.mkfifo(fifo)
    try:
        refused = finishes(lambda: pytest.raises(OSError, open_regular, str(fifo)))
    finally:
        unblock_fifo(fifo)
    assert os_error_code(refused.value) == "not_a_file"
    with pytest.raises(OSError) as directory:
        open_regular(str(tmp_path))
    assert os_error_code(directory.value) == "not_a_file"


def test_symlink_loops_are_reported_not_followed(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "img.png").write_bytes(image_bytes())
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # root/sub/up -> root: a loop
    (root / "self.png").symlink_to(root / "self.png")  # a link to itself: ELOOP
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "dangling.dat").symlink_to(tmp_path / "gone.dat")  # not named like an image: silent
    assert listed([str(root)]) == [
        (f"{root}/dangling.png", "file", "not_found"),
        (f"{root}/self.png", "file", "symlink_loop"),
        (f"{root}/sub/img.png", "file", ""),
        (f"{root}/sub/up", "file", "symlink_loop"),
    ]
    assert listed([str(root / "self.png")]) == [(f"{root}/self.png", "file", "symlink_loop")]


def test_symlinked_directories_are_followed_once(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.png").write_bytes(image_bytes())
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "link1").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "scan" / "link2").symlink_to(tmp_path / "real", target_is_directory=True)
    assert listed([str(tmp_path / "scan")]) == [(f"{tmp_path}/scan/link1/a.png", "file", "")]


def test_non_utf8_file_names_survive(tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.png")
    with open(name, "wb") as file:
        file.write(image_bytes())
    [item] = iter_items([str(tmp_path)])
    assert item.input == os.fsdecode(name) and not item.error_code
    assert os.fsencode(item.input) == name
    with open(item.input, "rb") as file:  # the str round-trips to the same file
        assert file.read() == image_bytes()


def test_sorted_names_iterate_in_str_order_with_non_utf8_names():
    names = ["b.png", os.fsdecode(b"\xff.png"), "\uff5a.png", "Z.png", os.fsdecode(b"a\xe9.png"), "\u00e9.png", ".h"]
    assert list(SortedNames(names)) == sorted(names)
    assert list(SortedNames(iter(names))) == sorted(names)  # any iterable, read once
    assert list(SortedNames([])) == []
    assert list(SortedNames(["only"])) == ["only"]


def test_walk_order_is_by_str_name_even_where_bytes_order_differs(tmp_path):
    # b"\xff" decodes to U+DCFF, which sorts before U+FF5A ('\uff5a') although its byte sorts after 0xEF.
    for name in (b"\xff.png", "\uff5a.png".encode(), b"Z.png", b"a\xe9.png", "\u00e9.png".encode(), b"b.png"):
        with open(os.path.join(os.fsencode(tmp_path), name), "wb") as file:
            file.write(image_bytes())
    expected = sorted(os.fsdecode(name) for name in os.listdir(os.fsencode(tmp_path)))
    assert [os.path.basename(i.input) for i in iter_items([str(tmp_path)])] == expected
    assert expected.index(os.fsdecode(b"\xff.png")) < expected.index("\uff5a.png")


def test_entries_are_judged_as_the_walk_reaches_them(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "b.png", "c.dat", "d.png", "sub/x.png", "sub/y.png"):
        (tmp_path / name).write_bytes(image_bytes())
    (tmp_path / "zz").mkdir()
    (tmp_path / "zz" / "z.png").write_bytes(image_bytes())
    items = iter_items([str(tmp_path)])
    assert next(items).input == f"{tmp_path}/a.png"  # the top directory is listed now
    (tmp_path / "b.png").unlink()  # vanished, named like an image: a row, as a dangling link is
    (tmp_path / "c.dat").unlink()  # vanished, not named like an image: skipped, as a dangling link is
    (tmp_path / "d.png").unlink()
    (tmp_path / "d.png").mkdir()  # a file replaced by a directory: walked as the directory it is now
    (tmp_path / "d.png" / "inside.gif").write_bytes(image_bytes("GIF"))
    assert next(items).input == f"{tmp_path}/b.png"
    assert listed_rest(items, until=f"{tmp_path}/sub/x.png") == [
        (f"{tmp_path}/d.png/inside.gif", "file", ""), (f"{tmp_path}/sub/x.png", "file", "")]
    (tmp_path / "sub" / "y.png").unlink()  # sub/ was listed before y.png went
    shutil.rmtree(tmp_path / "zz")  # a directory gone before the walk reached it: skipped, like c.dat
    assert listed_rest(items) == [(f"{tmp_path}/sub/y.png", "file", "not_found")]


def listed_rest(items, until=None):
    rows = []
    for item in items:
        rows.append((item.input, item.kind, item.error_code))
        if item.input == until:
            break
    return rows


def test_walking_a_big_directory_holds_little_per_entry(tmp_path):
    count = 5000
    for number in range(count):
        (tmp_path / f"IMG_{number:07d}.jpg").touch()
    items = iter_items([str(tmp_path)])
    tracemalloc.start()
    try:
        first = next(items)
        for _ in range(count // 2):
            next(items)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert first.input == f"{tmp_path}/IMG_0000000.jpg"
    assert held < count * 40, held  # the names packed, ~16 bytes each; os.DirEntry objects held ~500
    assert 1 + count // 2 + sum(1 for _ in items) == count


def test_missing_and_special_paths(tmp_path):
    missing = str(tmp_path / "nope.jpg")
    assert listed([missing]) == [(missing, "file", "not_found")]
    assert listed(["/dev/null"]) == [("/dev/null", "file", "not_a_file")]
    [item] = iter_items([missing])
    assert "nope.jpg" in item.error


def test_url_arguments_and_url_validation():
    assert listed(["https://example.com/a.jpg", "HTTP://EXAMPLE.com", "ftp://example.com/a.jpg"]) == [
        ("https://example.com/a.jpg", "url", ""), ("HTTP://EXAMPLE.com", "url", ""),
        ("ftp://example.com/a.jpg", "url", "unsupported_scheme")]
    for bad in ("example.com/a.jpg", "http://", "http:///path", "http://host:99999/", "http://host:x/",
                "http://exa mple.com/", "http://a.com/\tb", "//example.com/a.jpg"):
        assert url_problem(bad)[0] == "invalid_url", bad
    for other in ("javascript:alert(1)", "file:///etc/passwd", "data:image/png;base64,AAAA", "ftp://h/x"):
        assert url_problem(other)[0] == "unsupported_scheme", other
    for good in ("http://a.com", "https://a.com:8443/x?y=1#z", "http://[::1]:80/", "https://例え.jp/画像 1.jpg"):
        assert url_problem(good) is None, good


def test_txt_url_list(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("\ufeff# a comment\n\nhttps://a.example/1.jpg\n   \n  http://b.example/2.png  \r\n"
                    "not a url\njavascript:alert(1)\n# https://commented.example/out\nhttps://c.example/3\n",
                    encoding="utf-8")
    items = list(iter_items([str(urls)]))
    assert [(i.input, i.kind, i.error_code) for i in items] == [
        ("https://a.example/1.jpg", "url", ""), ("http://b.example/2.png", "url", ""),
        ("not a url", "url", "invalid_url"), ("javascript:alert(1)", "url", "unsupported_scheme"),
        ("https://c.example/3", "url", "")]
    assert f"{urls}:6" in items[2].error  # says where the bad line is


def test_csv_url_list(tmp_path):
    good = tmp_path / "list.csv"
    good.write_text('id,URL,caption\n1,https://a.example/1.jpg,"a, quoted caption"\n2,,empty\n'
                    '3,https://b.example/2.png,x\n4,gopher://old.example/,y\n5\n')
    assert listed([str(good)]) == [("https://a.example/1.jpg", "url", ""), ("https://b.example/2.png", "url", ""),
                                   ("gopher://old.example/", "url", "unsupported_scheme")]
    bad = tmp_path / "no-url-column.csv"
    bad.write_text("id,link\n1,https://a.example/1.jpg\n")
    [item] = iter_items([str(bad)])
    assert (item.input, item.error_code) == (str(bad), "bad_url_list") and "url" in item.error
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert listed([str(empty)]) == [(str(empty), "file", "bad_url_list")]


def test_stdin_and_mixed_inputs_keep_argument_order(tree, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://a.example/1.jpg\n")
    stdin = io.StringIO(f"{tree}/c.bmp\n\nhttps://s.example/x.png\n{urls}\n-\n")
    items = listed([str(tree / "b"), "-", "https://z.example/z.gif", str(tmp_path / "missing.png")], stdin=stdin)
    assert items == [
        (f"{tree}/b/deeper/one.webp", "file", ""), (f"{tree}/b/z.JPG", "file", ""),
        (f"{tree}/c.bmp", "file", ""), ("https://s.example/x.png", "url", ""), ("https://a.example/1.jpg", "url", ""),
        ("-", "file", "not_found"),  # '-' on stdin is a path, not stdin again
        ("https://z.example/z.gif", "url", ""), (f"{tmp_path}/missing.png", "file", "not_found")]


def test_stdin_is_read_lazily():
    consumed = []

    def lines():  # a million lines that only exist as they are asked for
        for number in range(1_000_000):
            consumed.append(number)
            yield f"https://example.com/{number}.jpg\n"

    items = iter_items(["-"], stdin=lines())
    assert next(items).input == "https://example.com/0.jpg"
    assert len(consumed) == 1


@pytest.mark.slow  # lists 200,000 URLs under tracemalloc
def test_big_url_list_streams_in_flat_memory(tmp_path):
    urls = tmp_path / "urls.txt"
    lines = 200_000
    with open(urls, "w") as file:
        for number in range(lines):
            file.write(f"https://img{number % 97}.example.com/some/long/path/{number:09d}.jpg\n")
    size = urls.stat().st_size
    items = iter_items([str(urls)])
    tracemalloc.start()
    try:
        first = next(items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first.input == "https://img0.example.com/some/long/path/000000000.jpg"
    assert peak < size / 50, (peak, size)  # the first item came before the file was read, let alone held
    assert 1 + sum(1 for _ in items) == lines


def test_shards_partition_inputs_disjointly_and_completely():
    inputs = [f"https://example.com/{n}.jpg" for n in range(500)] + [f"/data/photo{n}.png" for n in range(500)]
    items = [Item(x, "url" if x.startswith("http") else "file") for x in inputs]
    shards = [[item.input for item in shard_filter(items, (k, 3))] for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(inputs)  # complete and disjoint
    assert all(len(shard) > 250 for shard in shards)  # and roughly even
    reordered = [[item.input for item in shard_filter(reversed(items), (k, 3))] for k in (1, 2, 3)]
    assert [set(s) for s in reordered] == [set(s) for s in shards]  # membership does not depend on order
    assert [item.input for item in shard_filter(items, (1, 1))] == inputs
    with pytest.raises(ValueError):
        list(shard_filter(items, (0, 3)))
    with pytest.raises(ValueError):
        list(shard_filter(items, (4, 3)))


def listing_codes(inputs):
    return [[item.input, item.error_code] for item in iter_items(inputs)]


@posix
def test_unreadable_directory_and_url_list_are_permission_denied(shared_tmp):
    root = os.path.join(shared_tmp, "root")
    os.makedirs(os.path.join(root, "locked"))
    with open(os.path.join(root, "locked", "secret.png"), "wb") as file:
        file.write(image_bytes())
    with open(os.path.join(root, "open.png"), "wb") as file:
        file.write(image_bytes())
    urls = os.path.join(shared_tmp, "urls.txt")
    with open(urls, "w") as file:
        file.write("https://a.example/1.jpg\n")
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "locked"), 0o000)
    os.chmod(urls, 0o000)
    assert run_unprivileged(listing_codes, [root, urls]) == [
        [f"{root}/locked", "permission_denied"], [f"{root}/open.png", ""], [urls, "permission_denied"]]


def test_credentials_are_redacted_from_urls_and_messages():
    from ipdscan.scanning.urls import redact_credentials
    assert redact_credentials("https://user:p@ss@host.example/a@b.png?x=@") == "https://***@host.example/a@b.png?x=@"
    assert redact_credentials("invalid URL 'HTTP://u:p@h/x' and ftp://t@h/y") == "invalid URL 'HTTP://***@h/x' and ftp://***@h/y"
    assert redact_credentials("https://host/a@b.png") == "https://host/a@b.png"  # an @ in the path is no credential
    assert url_item("https://u:p@h/x.png").redacted == "https://***@h/x.png"
    assert Item("photos/u:p@h.png", "file").redacted == "photos/u:p@h.png"


def test_exclude_drops_local_files_before_sharding_and_never_urls(tmp_path, monkeypatch):
    from ipdscan.scanning.options import ScanOptions
    from ipdscan.scanning.sources import selected_items
    (tmp_path / "vendor" / "deep").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "vendor/c.png", "vendor/deep/d.png"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    options = ScanOptions(exclude=("vendor/*", "*.jpg"))
    inputs = [".", "b.jpg", str(tmp_path / "vendor" / "c.png"), "https://example.com/x.jpg"]
    assert [item.input for item in selected_items(inputs, options)] == ["./a.png", "https://example.com/x.jpg"]
    with pytest.raises(ValueError, match="--exclude sub/: a glob ending with '/'"):
        ScanOptions(exclude=("sub/",))
