import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import ipdscan.scanning.decode as decode_module
from ipdscan.scanning.decode import SUPPORTED_FORMATS, DecodeError, decode
from ipdscan.scanning.exif import exif_fields
from ipdscan.scanning.formats import ERROR_CODES

from images import (
    CAMERA,
    CAMERA_DATETIME,
    HOSTILE_KINDS,
    KINDS,
    camera_exif,
    encoded,
    expected,
    float_gray,
    gray16,
    make_hostile_corpus,
    natural,
    natural_rgb,
    png_bytes,
    rgb16,
    with_png_text_bomb,
)

NO_EXIF = {"make": "", "model": "", "software": "", "datetime": ""}


def image_bytes(kind: str) -> bytes:
    return KINDS[kind][1]()


def pixels_of(kind: str) -> np.ndarray:
    """(H, W, 3) uint8, as decode returned them."""
    return decode(image_bytes(kind)).pixels.transpose(1, 2, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_decodes_as_expected(kind):
    want = expected(kind)
    if want.code != "ok":
        with pytest.raises(DecodeError) as info:
            decode(image_bytes(kind))
        assert info.value.code == want.code
        assert info.value.message and str(info.value) == info.value.message
        return
    decoded = decode(image_bytes(kind))
    width, height = want.size
    assert (decoded.format, decoded.width, decoded.height, decoded.frames) == (want.format, width, height, want.frames)
    assert decoded.pixels.shape == (3, height, width)
    assert decoded.pixels.dtype == np.uint8 and isinstance(decoded.pixels, np.ndarray)  # no torch in the CPU stage
    assert decoded.pixels.flags.c_contiguous
    assert set(decoded.exif) == set(NO_EXIF)


DECODE_ERRORS = ("empty_file", "unsupported_format", "decode_error", "decompression_bomb")


def test_error_codes_and_formats_are_the_documented_ones():
    assert set(DECODE_ERRORS) <= set(ERROR_CODES)
    assert {e.code for e in map(expected, KINDS)} == {"ok", *DECODE_ERRORS}
    assert {e.format for e in map(expected, KINDS)} - {""} == set(SUPPORTED_FORMATS)


def test_hostile_corpus_files_decode_to_their_expected_codes(tmp_path):
    corpus = make_hostile_corpus(tmp_path)
    assert len(corpus) == len(HOSTILE_KINDS) and sorted(p.name for p in tmp_path.iterdir()) == sorted(corpus)
    assert "ok" in corpus.values() and set(DECODE_ERRORS) <= set(corpus.values())
    for name, code in corpus.items():
        try:
            decode((tmp_path / name).read_bytes())
            got = "ok"
        except DecodeError as exc:
            got = exc.code
        assert got == code, name


def test_rgb_pixels_are_the_stored_ones():
    assert np.array_equal(pixels_of("png"), natural_rgb())
    assert np.array_equal(pixels_of("bmp"), natural_rgb())
    assert np.array_equal(pixels_of("gray")[..., 0], np.asarray(natural().convert("L")))
    assert set(np.unique(pixels_of("bilevel"))) == {0, 255}


def test_16_bit_gray_is_scaled_not_clipped():
    got = pixels_of("png16")
    assert np.array_equal(got[..., 0], got[..., 2])
    assert tuple(got[0, :3, 0]) == (0, 128, 255)  # 0, 32768, 65535
    assert np.array_equal(got[..., 0], np.rint(gray16() / 257).astype(np.uint8))


def test_16_bit_rgb_keeps_its_colours():
    got = pixels_of("png16_rgb").astype(int)
    assert np.abs(got - rgb16() / 257).max() <= 1


def test_float_gray_in_0_1_is_scaled_to_0_255():
    got = pixels_of("tiff_float")
    assert np.array_equal(got[..., 1], np.rint(float_gray() * 255).astype(np.uint8))


@pytest.mark.parametrize("values", [np.linspace(-50, 1000, 64 * 48, dtype=np.float32),
                                    np.linspace(0, 2**20, 64 * 48).astype(np.int32)], ids=["float", "int32"])
def test_high_depth_beyond_the_usual_ranges_is_stretched(values):
    mode = "F" if values.dtype.kind == "f" else "I"
    got = decode(encoded(Image.fromarray(values.reshape(48, 64), mode), "TIFF")).pixels[0].flatten()
    assert got[0] == 0 and got[-1] == 255 and got[len(got) // 2] in (127, 128)
    assert (np.diff(got.astype(int)) >= 0).all()


def test_alpha_is_dropped_and_the_colour_underneath_kept():
    assert np.array_equal(pixels_of("rgba"), natural_rgb())  # the left half is fully transparent
    assert np.array_equal(pixels_of("la")[..., 0], np.asarray(natural().convert("L")))


def test_palette_with_transparency_converts_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pixels_of("palette_transparency")
    palette = Image.open(io.BytesIO(image_bytes("palette_transparency")))
    assert np.array_equal(got, np.asarray(palette.convert("RGBA"))[..., :3])


def test_cmyk_jpeg_comes_out_in_the_right_colours():
    got = pixels_of("cmyk_jpeg").astype(int)
    assert np.abs(got - natural_rgb()).mean() < 8  # an uninverted Adobe CMYK would be off by ~128


def test_animation_gives_its_first_frame():
    for kind in ("gif_animated", "apng", "webp_animated", "mpo", "tiff_pages"):
        means = pixels_of(kind).reshape(-1, 3).mean(axis=0)
        assert means[0] > means[1] + 60 and means[0] > means[2] + 60, kind  # the first frame is the red one


def test_exif_orientation_is_applied():
    got = pixels_of("orientation_jpeg")
    assert got.shape == (64, 48, 3)
    red = (got[..., 0] > 200) & (got[..., 1] < 60) & (got[..., 2] < 60)
    # Orientation 6 means "rotate 90 degrees clockwise to display": the stored top-left goes top-right.
    assert red[:12, -12:].all() and not red[-12:, :].any() and not red[:, :12].any()


def test_failed_orientation_handling_does_not_fail_the_decode(monkeypatch):
    def broken(*args, **kwargs):
        raise SyntaxError("corrupt EXIF")
    monkeypatch.setattr(decode_module.ImageOps, "exif_transpose", broken)
    decoded = decode(image_bytes("orientation_jpeg"))
    assert (decoded.width, decoded.height) == (64, 48)  # as stored


def test_exif_fields_are_read():
    assert decode(image_bytes("jpeg")).exif == CAMERA  # DateTimeOriginal preferred over DateTime
    # WebP keeps bare TIFF data in its EXIF chunk; only DateTime is there, so it is the fallback.
    assert decode(image_bytes("webp")).exif == {**NO_EXIF, "make": CAMERA["make"], "datetime": CAMERA_DATETIME}
    assert exif_fields(encoded(natural(), "PNG", exif=camera_exif())) == CAMERA  # an eXIf chunk


def webp_with_exif_chunk(payload: bytes) -> bytes:
    """A still WebP whose EXIF chunk holds ``payload``, after an unknown chunk."""
    webp = encoded(natural(), "WEBP", exif=b"MM\x00\x2a\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00")
    start = webp.index(b"EXIF")
    size = int.from_bytes(webp[start + 4:start + 8], "little")
    chunk = b"EXIF" + len(payload).to_bytes(4, "little") + payload + b"\x00" * (len(payload) & 1)
    unknown = b"XTRA\x03\x00\x00\x00abc\x00"  # odd-sized, so padded: readers must skip the pad byte
    body = webp[12:start] + unknown + chunk + webp[start + 8 + size + (size & 1):]
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def test_webp_exif_is_read_with_and_without_the_jpeg_style_prefix():
    tiff = camera_exif().tobytes().removeprefix(b"Exif\x00\x00")
    assert tiff.startswith(b"MM") or tiff.startswith(b"II")
    for payload in (tiff, b"Exif\x00\x00" + tiff):
        data = webp_with_exif_chunk(payload)
        assert decode(data).format == "WEBP"
        assert exif_fields(data) == CAMERA


@pytest.mark.parametrize("format", ["HEIF", "AVIF"])
def test_phone_exif_in_heic_and_avif_reaches_the_columns(format):
    """Issue 21, item 12: an iPhone-style HEIC's Make=Apple left every exif_* column empty (exifread cannot walk
    a HEIC's items to its EXIF), while the same EXIF in JPEG or AVIF was read."""
    phone = camera_exif()
    phone[0x010F], phone[0x0110], phone[0x0131] = "Apple", "iPhone 15 Pro", "17.4.1"
    decoded = decode(encoded(natural(), format, quality=90, exif=phone.tobytes()))
    assert decoded.exif == {"make": "Apple", "model": "iPhone 15 Pro", "software": "17.4.1",
                            "datetime": CAMERA["datetime"]}


def test_corrupt_exif_gives_empty_fields_and_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns "Corrupt EXIF data" on this one when left alone
        decoded = decode(image_bytes("corrupt_exif_jpeg"))
    assert decoded.exif == NO_EXIF


def test_metadata_that_pillow_refuses_never_stops_the_pixels():
    """A PNG text chunk inflating past Pillow's 1 MB limit (before IDAT or after it), or a cut-short Adobe
    segment in a JPEG, made the whole image a decode_error: anyone could hide any image from the score."""
    png, jpeg = image_bytes("png"), image_bytes("jpeg")
    after_idat = png[:-12] + with_png_text_bomb(png)[33:-len(png) + 33] + png[-12:]  # the zTXt before IEND
    short_adobe = jpeg[:2] + b"\xff\xee\x00\x07Adobe" + jpeg[2:]
    for bare, hostile in ((png, image_bytes("text_bomb_png")), (png, after_idat), (jpeg, short_adobe)):
        assert np.array_equal(decode(hostile).pixels, decode(bare).pixels)
    assert decode(short_adobe).exif == CAMERA  # read from the file as it is
    with pytest.raises(DecodeError) as info:  # broken pixels stay broken, with the file's own message
        decode(with_png_text_bomb(image_bytes("truncated_png")))
    assert info.value.code == "decode_error"


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM", b"II*\x00" + b"\xff" * 20,
                                  b"RIFF\x10\x00\x00\x00WEBPEXIF\xff\xff\xff\xff", b"not an image"])
def test_exif_fields_never_raises_and_stays_quiet(data, caplog):
    caplog.set_level(logging.DEBUG)
    assert exif_fields(data) == NO_EXIF
    assert not [r for r in caplog.records if r.name.startswith("exifread")]


def test_exif_fields_survives_exifread_raising(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError
    monkeypatch.setattr("ipdscan.scanning.exif.exifread.process_file", broken)
    assert exif_fields(image_bytes("jpeg")) == NO_EXIF


def test_exif_is_not_parsed_for_formats_that_cannot_carry_it(monkeypatch):
    calls = []
    monkeypatch.setattr(decode_module, "exif_fields", lambda data: calls.append(data) or NO_EXIF)
    assert decode(image_bytes("gif_animated")).exif == NO_EXIF and decode(image_bytes("bmp")).exif == NO_EXIF
    assert calls == []


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Fail the test if any image's pixels are decoded."""
    def load(self):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.parametrize("kind", ["bomb_png", "large_png"])  # over Pillow's hard ceiling / over max_pixels only
def test_decompression_bombs_are_refused_from_the_header(kind, no_pixel_decoding):
    with pytest.raises(DecodeError) as info:
        decode(image_bytes(kind))
    assert info.value.code == "decompression_bomb"


def test_max_pixels_is_the_limit(no_pixel_decoding):
    with pytest.raises(DecodeError) as info:
        decode(image_bytes("png"), max_pixels=64 * 48 - 1)
    assert info.value.code == "decompression_bomb" and "3,072 pixels" in info.value.message


def test_max_pixels_is_inclusive():
    assert decode(image_bytes("png"), max_pixels=64 * 48).width == 64


def test_bomb_checks_leave_global_state_alone(recwarn):
    filters, limit = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    for kind in ("bomb_png", "large_png", "corrupt_exif_jpeg", "png"):
        try:
            decode(image_bytes(kind))
        except DecodeError:
            pass
    assert warnings.filters == filters and Image.MAX_IMAGE_PIXELS == limit
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    assert len(recwarn) == 0  # Pillow's advisory DecompressionBombWarning for large_png stays inside decode


def test_a_broken_file_with_a_known_signature_is_a_decode_error():
    for data in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, b"GIF89a\x00", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBPVP8 "):
        with pytest.raises(DecodeError) as info:
            decode(data)
        assert info.value.code == "decode_error", data


def test_formats_outside_the_supported_ones_are_refused():
    for fmt in ("ICO", "PPM", "TGA"):
        with pytest.raises(DecodeError) as info:
            decode(encoded(natural(), fmt))
        assert info.value.code == "unsupported_format", fmt


def test_png_with_a_bad_crc_is_a_decode_error():
    png = bytearray(png_bytes(4, 4, 8, 2, (b"\x00" + b"\x80" * 12) * 4))
    png[-20] ^= 0xFF  # inside IDAT
    with pytest.raises(DecodeError) as info:
        decode(bytes(png))
    assert info.value.code == "decode_error"


def test_default_pixel_limit_refuses_a_60_megapixel_image_before_decoding():
    from images import png_bytes
    # 8000x7500 declared, a few bytes of body: refused from the header (a 100-megapixel limit let such a file
    # cost ~1.6 GB while its pixels were decoded and converted)
    with pytest.raises(DecodeError) as refused:
        decode(png_bytes(8000, 7500, 8, 2, b"\x00" * 64))
    assert refused.value.code == "decompression_bomb"
    assert decode_module.MAX_PIXELS <= 50_000_000


def test_the_readme_lists_exactly_the_error_codes_of_the_table():
    """formats.ERROR_CODES is the one table of row error codes: the README's list must name each, and no other."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    paragraph = readme[readme.index("\nError codes: "):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    listed = [code for code in re.findall(r"`([a-z_<>]+)`", paragraph) if code != "http_404"]  # http_404: an example
    assert sorted(listed) == sorted(ERROR_CODES) and len(listed) == len(set(listed))
