"""What a scan knows about files before decoding them, and how an input can fail: the one table of image format
signatures (a folder walk's sniffing and the decoder's "corrupt, not some other file" both read it), and the
one table of the error codes a report row may carry, each with its meaning (the README lists the same codes)."""
from __future__ import annotations

HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
AVIF_BRANDS = (b"avif", b"avis")
# "BM" alone starts plenty of text files; a real BMP's DIB header size is one of these.
BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)
SIGNATURE_BYTES = 32  # enough of a file's start for every signature below

# (format, does a file's start bear its signature), in the order they are tried
SIGNATURES = (
    ("JPEG", lambda head: head.startswith(b"\xff\xd8\xff")),
    ("PNG", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ("GIF", lambda head: head[:6] in (b"GIF87a", b"GIF89a")),
    ("WEBP", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
    ("TIFF", lambda head: head[:4] in (b"II*\x00", b"MM\x00*")),
    ("AVIF", lambda head: head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS),  # ISO BMFF: the brand says which
    ("HEIF", lambda head: head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS),
    ("BMP", lambda head: head[:2] == b"BM" and len(head) >= 18
     and int.from_bytes(head[14:18], "little") in BMP_HEADER_SIZES),
)

ERROR_CODES = {
    "not_found": "no such file or directory",
    "permission_denied": "the file or a folder on its path cannot be read",
    "not_a_file": "a FIFO, socket or device: never opened",
    "symlink_loop": "a symbolic link leads back into a folder it is in",
    "read_error": "reading the file failed",
    "invalid_input": "a stdin line that can name no file: a NUL byte in it, or too long",
    "is_the_report": "a name on stdin that is the report file itself: never read, and the scan stops unwritten",
    "invalid_url": "a URL that cannot be fetched as written",
    "unsupported_scheme": "a URL that is not http or https",
    "bad_url_list": "a .csv URL list without a url column, or malformed",
    "too_large": "over the size limit (--max-mb)",
    "blocked_address": "a URL whose host is a loopback, private or reserved address",
    "connection_error": "the connection failed or the host could not be resolved",
    "timeout": "no answer within the time limits",
    "tls_error": "the TLS handshake or certificate check failed",
    "too_many_redirects": "more redirects than allowed",
    "http_error": "a malformed HTTP response",
    "http_<status>": "an HTTP error status, e.g. http_404",
    "empty_file": "the file holds no bytes",
    "unsupported_format": "not an image in a supported format",
    "decode_error": "the pixels themselves cannot be decoded",
    "decompression_bomb": "over the pixel limit, refused from the header",
    "model_error": "the model's output is not a number: faulty weights or device",
}


def signature_format(head: bytes) -> str:
    """The supported format whose signature ``head`` (a file's first bytes) starts with, or ""."""
    return next((name for name, signed in SIGNATURES if signed(head)), "")
