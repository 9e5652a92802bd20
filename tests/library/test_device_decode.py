"""The device decode path (JPEGs decoded in batches on the scoring device) against the worker path (Pillow).

On the CPU, torchvision's decoder is libjpeg-turbo like Pillow's, so the two paths must agree exactly; on CUDA
(nvjpeg, run where a GPU is present) they must agree within the tolerance stated in benchmarks/RESULTS.md.
"""
import threading

import pytest
import torch

from ipdscan import ScanOptions, load_detector, scan
from ipdscan.scanning import device_decode
from ipdscan.scanning.decode import decode, read_jpeg_header
from ipdscan.scanning.device_decode import decode_jpegs, device_decodes_jpeg
from ipdscan.scanning.device_stage import in_background
from ipdscan.scanning.plan import decodes_on_device

from images import KINDS, camera_exif, encoded, make_corpus, natural

CPU = torch.device("cpu")
# nvjpeg (the GPU's hardware JPEG engines) rounds its IDCT and upsamples chroma differently from libjpeg-turbo:
# a few grey levels here and there, which the SRM high-pass sees. Measured on an H200 with the shipped weights,
# 2048 JPEGs: |score difference| max 0.117, 99th percentile 0.039, mean 0.0075, no label changed at 0.5
# (benchmarks/RESULTS.md). The bounds leave a little room above those.
CUDA_MAX_DIFFERENCE, CUDA_MEAN_DIFFERENCE = 0.15, 0.02


def as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def oriented_jpeg(orientation: int, width: int = 50, height: int = 30) -> bytes:
    exif = camera_exif()
    exif[0x0112] = orientation
    return encoded(natural(width, height, seed=orientation), "JPEG", exif=exif, quality=92)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_decode_applies_exif_orientation_as_pillow_does(orientation):
    data = oriented_jpeg(orientation)
    header = read_jpeg_header(data)
    reference = decode(data)
    assert (header.width, header.height) == (reference.width, reference.height)
    pixels = decode_jpegs([as_tensor(data)], [header], CPU)[0]
    assert torch.equal(pixels, torch.from_numpy(reference.pixels))


def test_grayscale_jpeg_decodes_to_the_same_rgb():
    data = encoded(natural(40, 24).convert("L"), "JPEG")
    pixels = decode_jpegs([as_tensor(data)], [read_jpeg_header(data)], CPU)[0]
    assert torch.equal(pixels, torch.from_numpy(decode(data).pixels))


@pytest.mark.parametrize("kind", ["png", "cmyk_jpeg", "mpo", "truncated_jpeg", "corrupt_jpeg", "empty", "text_as_jpg"])
def test_header_reader_leaves_everything_but_plain_jpegs_to_the_cpu_decoder(kind):
    assert read_jpeg_header(KINDS[kind][1]()) is None


def test_header_reader_leaves_oversized_jpegs_to_the_cpu_decoder():
    data = encoded(natural(64, 48), "JPEG")
    assert read_jpeg_header(data, max_pixels=64 * 48) is not None
    assert read_jpeg_header(data, max_pixels=64 * 48 - 1) is None  # decode() reports the decompression bomb


def test_header_reader_reads_the_camera_fields():
    data = encoded(natural(64, 48), "JPEG", exif=camera_exif())
    assert read_jpeg_header(data).exif == decode(data).exif


def test_calls_respect_the_pixel_budget_and_decode_the_same(monkeypatch):
    files = [encoded(natural(32 + 8 * i, 24, seed=i), "JPEG") for i in range(5)]
    headers = [read_jpeg_header(f) for f in files]
    whole = decode_jpegs([as_tensor(f) for f in files], headers, CPU)
    calls = []
    real = device_decode._decode
    monkeypatch.setattr(device_decode, "_decode", lambda batch, device: calls.append(len(batch)) or real(batch, device))
    monkeypatch.setattr(device_decode, "PIXELS_PER_CALL", 2 * 48 * 24)
    split = decode_jpegs([as_tensor(f) for f in files], headers, CPU)
    assert calls == [2, 1, 1, 1] and sum(calls) == len(files)  # 32x24 + 40x24 fit; each later one fills a call
    assert all(torch.equal(a, b) for a, b in zip(whole, split))


def test_a_stream_the_decoder_rejects_fails_alone(monkeypatch):
    good = [encoded(natural(40, 30, seed=i), "JPEG") for i in range(3)]
    bad = good[1][:200] + b"\x00" * 50 + good[1][-2:]  # a valid header, then garbage; still ends with EOI
    files = [good[0], bad, good[2]]
    headers = [read_jpeg_header(f) for f in files]
    assert headers[1] is not None  # passes the header check: only decoding finds the damage
    real = device_decode._decode

    def strict(batch, device):  # nvjpeg raises for a whole call when one stream is bad; emulate it exactly
        if any(torch.equal(b, as_tensor(bad)) for b in batch):
            raise RuntimeError("Error while decoding JPEG images")
        return real(batch, device)

    monkeypatch.setattr(device_decode, "_decode", strict)
    pixels = decode_jpegs([as_tensor(f) for f in files], headers, CPU)
    assert pixels[1] is None
    assert torch.equal(pixels[0], torch.from_numpy(decode(good[0]).pixels))
    assert torch.equal(pixels[2], torch.from_numpy(decode(good[2]).pixels))


def test_a_size_that_disagrees_with_the_header_is_not_trusted():
    data = encoded(natural(40, 30), "JPEG")
    header = read_jpeg_header(data)
    header.width = 41  # as if nvjpeg and Pillow read different frame sizes
    assert decode_jpegs([as_tensor(data)], [header], CPU) == [None]


def test_cpu_decodes_jpeg_in_the_scoring_process():
    assert device_decodes_jpeg(CPU)


@pytest.fixture
def rows(scan):
    """``rows(inputs, detector, **options) -> list[dict]``: the ``scan`` fixture's rows as report dicts, 8 a batch."""
    return lambda inputs, detector, **options: [r.to_dict() for r in scan(inputs, detector, **{"batch_size": 8, **options})]


def spy_on_device_decoding(monkeypatch) -> list[int]:
    """Counts the files that reach the device decoder."""
    counted, real = [], device_decode.decode_jpegs
    monkeypatch.setattr("ipdscan.scanning.device_stage.decode_jpegs",
                        lambda files, headers, device: counted.append(len(files)) or real(files, headers, device))
    return counted


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_device_path_scan_equals_worker_path_on_every_kind(tmp_path, detector, monkeypatch, workers, one_thread, rows, photo):
    make_corpus(tmp_path)
    photo("big.jpg", 700, 500, seed=5, quality=90)
    for orientation in (3, 6):
        (tmp_path / f"o{orientation}.jpg").write_bytes(oriented_jpeg(orientation, 400, 260))
    expected = rows([str(tmp_path)], detector, decode="workers", workers=workers)
    counted = spy_on_device_decoding(monkeypatch)
    got = rows([str(tmp_path)], detector, decode="device", workers=workers)
    assert [r["input"] for r in got] == [r["input"] for r in expected]  # order kept
    assert got == expected  # every field, scores included: the same libjpeg on both paths
    # photo.jpg, rotated.jpg, bad-exif.jpg, big.jpg, o3.jpg, o6.jpg went to the device; CMYK, MPO, broken ones did not
    assert sum(counted) == 6


@pytest.mark.slow
def test_device_path_tiles_equal_worker_path(tmp_path, detector, one_thread, rows, photo):
    for i in range(3):
        photo(f"{i}.jpg", 300 + 90 * i, 260, seed=i)
    assert rows([str(tmp_path)], detector, decode="device", crops=4) == rows([str(tmp_path)], detector, decode="workers", crops=4)


def test_a_jpeg_the_device_cannot_decode_is_decoded_on_the_cpu(tmp_path, detector, monkeypatch, one_thread, rows, photo):
    for i in range(3):
        photo(f"{i}.jpg", 260, 240, seed=i)
    expected = rows([str(tmp_path)], detector, decode="workers")
    real = device_decode.decode_jpegs
    monkeypatch.setattr("ipdscan.scanning.device_stage.decode_jpegs",  # as if the device failed the second file
                        lambda files, headers, device: [None if i == 1 else p for i, p in enumerate(real(files, headers, device))])
    assert rows([str(tmp_path)], detector, decode="device") == expected


def test_a_jpeg_no_decoder_can_read_costs_only_its_row(tmp_path, detector, one_thread, rows):
    good = encoded(natural(260, 240), "JPEG")
    (tmp_path / "a.jpg").write_bytes(good)
    (tmp_path / "b.jpg").write_bytes(good[:300] + bytes(range(256)) * 4 + good[-2:])  # garbage scan, EOI kept
    (tmp_path / "c.jpg").write_bytes(good)
    device, workers = rows([str(tmp_path)], detector, decode="device"), rows([str(tmp_path)], detector, decode="workers")
    assert [r["status"] for r in device] == [r["status"] for r in workers]
    assert device[0] == workers[0] and device[2] == workers[2] and device[0]["score"] == device[2]["score"]
    if device[1]["status"] == "error":  # libjpeg may also fill in a damaged scan with a warning: both paths agree
        assert device[1]["error_code"] == "decode_error"


def test_unknown_decode_choice_is_refused(detector):
    with pytest.raises(ValueError, match="unknown decode"):
        list(scan(["x.jpg"], detector, options=ScanOptions(decode="gpu")))


def test_auto_decodes_on_the_device_only_on_cuda():
    assert not decodes_on_device("auto", CPU)
    assert decodes_on_device("device", CPU)
    assert not decodes_on_device("workers", CPU)


def test_background_reader_keeps_order_and_raises_the_readers_error():
    assert list(in_background(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(in_background(failing()))


def test_background_reader_stops_when_the_consumer_stops():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    reader = in_background(endless(), depth=2)
    assert next(reader) == 0
    reader.close()  # joins the thread: it must notice and stop
    assert not any(t.name == "ipdscan-reader" for t in threading.enumerate())
    assert len(produced) <= 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_device_path_scores_within_tolerance_of_the_cpu(tmp_path, photo):
    for i in range(48):
        photo(f"{i:02d}.jpg", 640, 480, seed=i, quality=int(80 + i % 16))
    (tmp_path / "o6.jpg").write_bytes(oriented_jpeg(6, 640, 480))
    (tmp_path / "gray.jpg").write_bytes(encoded(natural(300, 260).convert("L"), "JPEG"))
    photo("progressive.jpg", 500, 400, seed=9, progressive=True)
    (tmp_path / "kinds").mkdir()
    make_corpus(tmp_path / "kinds")
    gpu = load_detector(None, "cuda", "fp32")  # the shipped weights: scores as users see them
    on_device = [r.to_dict() for r in scan([str(tmp_path)], gpu, options=ScanOptions(decode="device", workers=2))]
    in_workers = [r.to_dict() for r in scan([str(tmp_path)], gpu, options=ScanOptions(decode="workers", workers=2))]
    assert [r["input"] for r in on_device] == [r["input"] for r in in_workers]
    differences = []
    for a, b in zip(on_device, in_workers):
        unscored = lambda row: {k: v for k, v in row.items() if k not in ("score", "label")}  # noqa: E731
        assert unscored(a) == unscored(b)
        if a["status"] == "ok":
            differences.append(abs(a["score"] - b["score"]))
    assert len(differences) > 50 and max(differences) <= CUDA_MAX_DIFFERENCE
    assert sum(differences) / len(differences) <= CUDA_MEAN_DIFFERENCE
