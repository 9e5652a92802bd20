"""Small test images of every kind a scan meets, good and hostile, written on demand.

    textured_photo(w, h, seed)      a busier photo-like PIL image (gradients, edges, noise): the corpus tests' reals
    make_image(path, kind)          write one image of ``kind`` (a key of KINDS) to ``path``
    expected(kind)                  what decoding it must give: Expected(code, format, size, frames)
    make_corpus(dir, kinds=None)    write many (all by default) under their own names -> {filename: Expected}
    make_hostile_corpus(dir)        the broken, fake and extreme files -> {filename: "ok" or error code}

Content is natural-ish (gradients plus noise, seeded) and small (64x48), so suites stay fast.
"""
from __future__ import annotations

import importlib
import io
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

WIDTH, HEIGHT = 64, 48

# The EXIF written into the "jpeg" kind, and what exif_fields must find there (DateTimeOriginal beats DateTime).
CAMERA = {"make": "Canon", "model": "Canon EOS R5", "software": "ipdscan tests 1.0",
          "datetime": "2023:05:06 07:08:09"}
CAMERA_DATETIME = "2024:01:02 03:04:05"  # IFD0 DateTime: the fallback, the only date in the "webp" kind


@dataclass(frozen=True)
class Expected:
    code: str = "ok"  # "ok", or the DecodeError code
    format: str = ""
    size: tuple[int, int] = (WIDTH, HEIGHT)  # (width, height) as displayed
    frames: int = 1


def natural_rgb(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients plus mild noise, like a photo more than a test card."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / max(width - 1, 1), y / max(height - 1, 1)
    base = np.stack([40 + 170 * x, 60 + 120 * y, 200 - 150 * x * y], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def natural(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> Image.Image:
    return Image.fromarray(natural_rgb(width, height, seed))


def textured_photo(width: int, height: int, seed: int) -> Image.Image:
    """Textured colour content (a photo-like mix of gradients, edges and noise): the corpus builder's and the
    generators' real photos, busier than ``natural``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(x / (9 + seed)), 128 + 90 * np.cos(y / 13), 255 * (x + y) / (width + height)], -1)
    base[(x // 40 + y // 40) % 2 == 0] *= 0.6
    return Image.fromarray(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8))


def gray16() -> np.ndarray:
    """(H, W) uint16 gradient over the full 16-bit range; row 0 starts with 0, 32768, 65535 exactly."""
    a = np.linspace(0, 65535, WIDTH * HEIGHT).round().astype(np.uint16).reshape(HEIGHT, WIDTH)
    a[0, :3] = (0, 32768, 65535)
    return a


def rgb16() -> np.ndarray:
    """(H, W, 3) uint16: the "png16_rgb" kind's pixels."""
    return (natural_rgb().astype(np.uint16) * 257 + np.arange(3, dtype=np.uint16) * 100)


def float_gray() -> np.ndarray:
    """(H, W) float32 within 0..1: the "tiff_float" kind's pixels."""
    return np.linspace(0.1, 0.9, WIDTH * HEIGHT, dtype=np.float32).reshape(HEIGHT, WIDTH)


def tinted_frames(count: int = 3) -> list[Image.Image]:
    """Frames with a dominant channel each: red first, so a test can tell which frame it got."""
    frames = []
    for i in range(count):
        a = natural_rgb(seed=i) // 3
        a[..., i % 3] += 160
        frames.append(Image.fromarray(a))
    return frames


def camera_exif(**extra: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA["make"]
    exif[ExifTags.Base.Model] = CAMERA["model"]
    exif[ExifTags.Base.Software] = CAMERA["software"]
    exif[ExifTags.Base.DateTime] = CAMERA_DATETIME
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: CAMERA["datetime"]}  # the Exif sub-IFD
    for tag, value in extra.items():
        exif[ExifTags.Base[tag]] = value
    return exif


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_png_text_bomb(png: bytes, keyword: bytes = b"Comment", text: bytes = b" " * 1_100_000) -> bytes:
    """The PNG with a zTXt chunk right after IHDR that inflates to ``text``: over Pillow's 1 MB limit by default,
    from a chunk of about a kilobyte."""
    body = keyword + b"\x00\x00" + zlib.compress(text, 9)
    return png[:33] + png_chunk(b"zTXt", body) + png[33:]


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, scanlines: bytes) -> bytes:
    """A PNG assembled by hand (for what Pillow won't write): ``scanlines`` are rows with filter bytes."""
    chunk = png_chunk
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(scanlines))
            + chunk(b"IEND", b""))


def encoded(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """The JPEG with an APP1 segment holding ``payload`` right after its SOI marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def oriented() -> Image.Image:
    """A landscape image with a red block in its top-left corner, to see where a rotation puts it."""
    a = natural_rgb() // 2
    a[:16, :16] = (255, 0, 0)
    return Image.fromarray(a)


# Writers: kind -> bytes. Kept as functions so a corpus only builds what it writes.
def _jpeg():
    return encoded(natural(), "JPEG", quality=90, exif=camera_exif())


def _png():
    return encoded(natural(), "PNG")


def _webp():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA["make"]
    exif[ExifTags.Base.DateTime] = CAMERA_DATETIME
    return encoded(natural(), "WEBP", quality=90, exif=exif)


def _gif_animated():
    first, *rest = tinted_frames(3)
    return encoded(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def _apng():
    first, *rest = tinted_frames(3)
    return encoded(first, "PNG", save_all=True, append_images=rest, duration=100)


def _webp_animated():
    first, *rest = tinted_frames(3)
    return encoded(first, "WEBP", save_all=True, append_images=rest, duration=100, lossless=True)


def _gray():
    return encoded(natural().convert("L"), "PNG")


def _bilevel():
    return encoded(natural().convert("L").point(lambda v: 255 * (v > 110)).convert("1"), "PNG")


def _png16():
    return encoded(Image.fromarray(gray16()), "PNG")


def _png16_rgb():
    rows = rgb16().astype(">u2").reshape(HEIGHT, -1)
    scanlines = b"".join(b"\x00" + row.tobytes() for row in rows)
    return png_bytes(WIDTH, HEIGHT, 16, 2, scanlines)


def _rgba():
    a = np.dstack([natural_rgb(), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    a[:, : WIDTH // 2, 3] = 0  # left half fully transparent: its colours must still come through
    return encoded(Image.fromarray(a, "RGBA"), "PNG")


def _la():
    gray = natural().convert("L")
    alpha = Image.new("L", gray.size, 0)
    return encoded(Image.merge("LA", (gray, alpha)), "PNG")


def _palette_transparency():
    im = natural().quantize(16)
    return encoded(im, "PNG", transparency=bytes([0] * 8 + [255] * 8))  # per-entry alpha: a tRNS chunk


def _cmyk_jpeg():
    return encoded(natural().convert("CMYK"), "JPEG", quality=95)


def _mpo():
    first, second = tinted_frames(2)
    return encoded(first, "MPO", save_all=True, append_images=[second])


def _tiff_pages():
    first, second = tinted_frames(2)
    return encoded(first, "TIFF", save_all=True, append_images=[second])


def _tiff_float():
    return encoded(Image.fromarray(float_gray(), "F"), "TIFF")


def _bmp():
    return encoded(natural(), "BMP")


def _heic():
    importlib.import_module("ipdscan.scanning.image_plugins")  # registers pillow-heif's HEIF plugin, which can also encode
    return encoded(natural(), "HEIF", quality=90)


def _avif():
    return encoded(natural(), "AVIF", quality=90)


def _tiny():
    return encoded(natural(1, 1), "PNG")


def _wide():
    return encoded(natural(100_000, 1), "PNG")


def _tall():
    return encoded(natural(1, 100_000), "PNG")


def _orientation_jpeg():
    return encoded(oriented(), "JPEG", quality=95, exif=camera_exif(Orientation=6))


def _corrupt_exif_jpeg():
    # A TIFF header whose first IFD claims 0xFFFF entries in a few bytes, then noise: Pillow and exifread
    # both choke on it, yet the image data after it is intact.
    garbage = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08\xff\xff" + np.random.default_rng(1).bytes(40)
    return with_app1(encoded(natural(), "JPEG", quality=90), garbage)


def _corrupt_jpeg():
    jpeg = encoded(natural(), "JPEG", quality=90)
    return jpeg[:20] + np.random.default_rng(2).bytes(2000)  # SOI + JFIF APP0, then noise


def _truncated_jpeg():
    jpeg = encoded(natural(), "JPEG", quality=90)
    return jpeg[: len(jpeg) // 2]


def _truncated_avif():
    avif = _avif()
    return avif[: len(avif) // 2]


def _truncated_png():
    png = _png()
    return png[: len(png) // 2]


def _text_bomb_png():
    return with_png_text_bomb(_png())


def _bomb_png():
    # 100000x100000 RGB declared in a valid, CRC-correct IHDR; the body is a few compressed zero bytes.
    return png_bytes(100_000, 100_000, 8, 2, b"\x00" * 64)


def _large_png():
    # 12000x10000 = 120M pixels: over the default max_pixels, under Pillow's own hard ceiling.
    return png_bytes(12_000, 10_000, 8, 2, b"\x00" * 64)


KINDS: dict[str, tuple[str, Callable[[], bytes], Expected]] = {
    # kind: (file name, bytes, what decoding gives)
    "jpeg": ("photo.jpg", _jpeg, Expected(format="JPEG")),
    "png": ("picture.png", _png, Expected(format="PNG")),
    "webp": ("picture.webp", _webp, Expected(format="WEBP")),
    "gif_animated": ("animated.gif", _gif_animated, Expected(format="GIF", frames=3)),
    "apng": ("animated.png", _apng, Expected(format="PNG", frames=3)),
    "webp_animated": ("animated.webp", _webp_animated, Expected(format="WEBP", frames=3)),
    "gray": ("gray.png", _gray, Expected(format="PNG")),
    "bilevel": ("bilevel.png", _bilevel, Expected(format="PNG")),
    "png16": ("gray16.png", _png16, Expected(format="PNG")),
    "png16_rgb": ("rgb16.png", _png16_rgb, Expected(format="PNG")),
    "rgba": ("rgba.png", _rgba, Expected(format="PNG")),
    "la": ("la.png", _la, Expected(format="PNG")),
    "palette_transparency": ("palette.png", _palette_transparency, Expected(format="PNG")),
    "cmyk_jpeg": ("cmyk.jpg", _cmyk_jpeg, Expected(format="JPEG")),
    "mpo": ("stereo.mpo", _mpo, Expected(format="MPO", frames=2)),
    "tiff_pages": ("pages.tiff", _tiff_pages, Expected(format="TIFF", frames=2)),
    "tiff_float": ("float.tif", _tiff_float, Expected(format="TIFF")),
    "bmp": ("picture.bmp", _bmp, Expected(format="BMP")),
    "heic": ("phone.heic", _heic, Expected(format="HEIF")),
    "avif": ("picture.avif", _avif, Expected(format="AVIF")),
    "orientation_jpeg": ("rotated.jpg", _orientation_jpeg, Expected(format="JPEG", size=(HEIGHT, WIDTH))),
    # HOSTILE_KINDS: extreme, broken, fake
    "tiny": ("tiny.png", _tiny, Expected(format="PNG", size=(1, 1))),
    "wide": ("wide.png", _wide, Expected(format="PNG", size=(100_000, 1))),
    "tall": ("tall.png", _tall, Expected(format="PNG", size=(1, 100_000))),
    "corrupt_exif_jpeg": ("bad-exif.jpg", _corrupt_exif_jpeg, Expected(format="JPEG")),
    "corrupt_jpeg": ("corrupt.jpg", _corrupt_jpeg, Expected("decode_error")),
    "truncated_jpeg": ("truncated.jpg", _truncated_jpeg, Expected("decode_error")),
    "truncated_png": ("truncated.png", _truncated_png, Expected("decode_error")),
    "truncated_avif": ("truncated.avif", _truncated_avif, Expected("decode_error")),  # not "unsupported_format"
    "empty": ("empty.jpg", lambda: b"", Expected("empty_file")),
    "text_as_jpg": ("notes.jpg", lambda: b"just some notes, not a picture\n" * 4, Expected("unsupported_format")),
    "html_as_png": ("page.png", lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
                    Expected("unsupported_format")),
    "random_as_webp": ("noise.webp", lambda: np.random.default_rng(3).bytes(4096), Expected("unsupported_format")),
    "text_bomb_png": ("text-bomb.png", _text_bomb_png, Expected(format="PNG")),  # metadata never stops scoring
    "bomb_png": ("bomb.png", _bomb_png, Expected("decompression_bomb")),
    "large_png": ("large.png", _large_png, Expected("decompression_bomb")),
}
HOSTILE_KINDS = ("tiny", "wide", "tall", "corrupt_exif_jpeg", "corrupt_jpeg", "truncated_jpeg", "truncated_png",
                 "truncated_avif", "empty", "text_as_jpg", "html_as_png", "random_as_webp", "text_bomb_png",
                 "bomb_png", "large_png")


def make_image(path: Path | str, kind: str) -> Path:
    """Write an image of ``kind`` (a key of KINDS) to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(KINDS[kind][1]())
    return path


def expected(kind: str) -> Expected:
    return KINDS[kind][2]


def make_corpus(directory: Path | str, kinds: Iterable[str] | None = None) -> dict[str, Expected]:
    """Write ``kinds`` (all by default) into ``directory`` under their own file names -> {file name: Expected}."""
    directory = Path(directory)
    corpus = {}
    for kind in kinds or KINDS:
        name = KINDS[kind][0]
        make_image(directory / name, kind)
        corpus[name] = expected(kind)
    return corpus


def make_hostile_corpus(directory: Path | str) -> dict[str, str]:
    """Write the broken, fake and extreme files into ``directory`` -> {file name: "ok" or the error code}."""
    return {name: e.code for name, e in make_corpus(directory, HOSTILE_KINDS).items()}
