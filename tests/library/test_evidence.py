import io
import json
import zlib

import numpy as np
import pytest
from PIL import Image

from ipdscan import evidence
from ipdscan.evidence import MAX_DETAIL_TEXT, Evidence, codes_indicate_ai, containers, find_evidence, manifests
from ipdscan.evidence.vocabulary import MAX_FIELD
from ipdscan.scanning.result import Result

from evidence_files import (
    A1111,
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    IPTC,
    NOVELAI_COMMENT,
    billion_laughs_xmp,
    c2pa_signed,
    camera_jpeg,
    encoded,
    exif,
    gif_with_xmp,
    heif_with_c2pa,
    jpeg_with_app11,
    jpeg_with_exif,
    jpeg_with_xmp,
    jumbf_store,
    picture,
    png_with_cabx,
    png_with_chunk,
    png_with_text,
    png_with_xmp,
    user_comment,
    webp_with_c2pa,
    webp_with_exif,
    webp_with_xmp,
    xmp_packet,
)


@pytest.fixture
def without_c2pa_python(monkeypatch):
    monkeypatch.setattr(manifests, "c2pa_module", lambda: None)


def assert_ai(ev: Evidence, *codes: str):
    assert set(codes) <= set(ev.codes), ev
    assert ev.ai_indicated
    json.dumps(ev.detail)  # JSON-serialisable, always


# Clean files: no evidence at all.

@pytest.mark.parametrize("make", [
    camera_jpeg,
    lambda: encoded(picture(), "PNG"),
    lambda: encoded(picture(), "WEBP", quality=80),
    lambda: encoded(picture(), "GIF"),
    lambda: encoded(picture(), "BMP"),
    lambda: encoded(picture(), "TIFF", tiffinfo={305: "GIMP 2.10.36"}),
    lambda: jpeg_with_exif(software="Adobe Photoshop 25.0 (Windows)", ImageDescription="Editor de imagen"),
    lambda: png_with_text(Software="Adobe ImageReady", Comment="holiday snapshot", Title="beach"),
    lambda: png_with_text(parameters="brightness=3; contrast=1"),  # not the WebUI's format
], ids=["camera-jpeg", "png", "webp", "gif", "bmp", "tiff", "photoshop-jpeg", "ordinary-png-text", "other-parameters"])
def test_clean_files_give_no_evidence(make):
    ev = find_evidence(make())
    assert ev == Evidence([], {})
    assert not ev.ai_indicated
    assert Result(input="x", evidence=ev.codes, evidence_detail=ev.detail).to_dict()["evidence_detail"] == ""


def test_camera_jpeg_opened_in_pillow_gives_no_evidence():
    data = camera_jpeg()
    assert find_evidence(data, Image.open(io.BytesIO(data))).codes == []


# C2PA.

@pytest.mark.parametrize("build, container", [(jpeg_with_app11, "jpeg:app11"), (png_with_cabx, "png:caBX"),
                                              (webp_with_c2pa, "webp:C2PA"), (heif_with_c2pa, "bmff:uuid")])
def test_hand_built_c2pa_store_found_in_each_container(build, container, without_c2pa_python):
    ev = find_evidence(build(jumbf_store(IPTC + "trainedAlgorithmicMedia")))
    assert_ai(ev, "c2pa:present", "c2pa:trainedAlgorithmicMedia")
    assert ev.detail["c2pa"]["containers"] == [container]
    assert ev.detail["c2pa"]["verified"] is False
    assert "unverified" in ev.detail["c2pa"]["note"]


def test_c2pa_store_split_across_jpeg_segments_is_reassembled(without_c2pa_python):
    # The URI starts right at the 1000th payload byte of the first segment, so it is split between two segments,
    # and the repeated LBox/TBox header of the second segment must be dropped to make it whole again.
    store = jumbf_store(IPTC + "compositeWithTrainedAlgorithmicMedia", filler=900)
    uri_at = store.index(b"http://cv.iptc.org") - 8 + 20  # payload offset of the URI's 21st byte
    ev = find_evidence(jpeg_with_app11(store, segment_payload=uri_at))
    assert "c2pa:compositeWithTrainedAlgorithmicMedia" in ev.codes
    assert ev.detail["c2pa"]["digital_source_types"] == [IPTC + "compositeWithTrainedAlgorithmicMedia"]


def test_c2pa_store_declaring_a_capture_is_present_but_not_ai(without_c2pa_python):
    ev = find_evidence(jpeg_with_app11(jumbf_store(IPTC + "digitalCapture")))
    assert ev.codes == ["c2pa:digitalCapture", "c2pa:present"]
    assert not ev.ai_indicated


def test_app11_without_a_c2pa_label_is_not_c2pa(without_c2pa_python):
    store = jumbf_store(IPTC + "trainedAlgorithmicMedia").replace(b"c2pa", b"xxxx")
    assert find_evidence(jpeg_with_app11(store)).codes == []


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP", "HEIF", "AVIF"])
def test_signed_c2pa_manifest_is_read_and_validated(format):
    pytest.importorskip("c2pa")
    data = c2pa_signed(format, "trainedAlgorithmicMedia", generator="Midjourney")
    ev = find_evidence(data)
    assert_ai(ev, "c2pa:present", "c2pa:trainedAlgorithmicMedia", "c2pa:generator:Midjourney")
    c2pa = ev.detail["c2pa"]
    assert c2pa["verified"] is True
    assert c2pa["claim_generator"] == "Midjourney"
    assert c2pa["validation_state"] == "Valid"  # signature checks out; the test CA is not a trusted one
    assert "signingCredential.untrusted" in c2pa["validation_status"]


def test_signed_c2pa_manifest_raw_scan_agrees(without_c2pa_python):
    pytest.importorskip("c2pa")
    data = c2pa_signed("JPEG", "algorithmicMedia")
    assert find_evidence(data).codes == ["c2pa:algorithmicMedia", "c2pa:present"]


def test_tampered_c2pa_manifest_reports_invalid_state():
    pytest.importorskip("c2pa")
    data = c2pa_signed("JPEG", "trainedAlgorithmicMedia")
    tampered = data.replace(b"c2pa.created", b"c2pa.createD")
    ev = find_evidence(tampered)
    assert "c2pa:present" in ev.codes
    assert ev.detail["c2pa"]["validation_state"] == "Invalid"


def test_c2pa_store_the_library_cannot_read_falls_back_to_the_raw_scan():
    pytest.importorskip("c2pa")
    ev = find_evidence(jpeg_with_app11(jumbf_store(IPTC + "trainedAlgorithmicMedia")))
    assert ev.codes == ["c2pa:present", "c2pa:trainedAlgorithmicMedia"]
    assert ev.detail["c2pa"]["verified"] is False
    assert "could not read it" in ev.detail["c2pa"]["note"]


# XMP.

@pytest.mark.parametrize("form", ["attribute", "element", "resource"])
@pytest.mark.parametrize("build", [jpeg_with_xmp, png_with_xmp, webp_with_xmp,
                                   lambda packet: png_with_xmp(packet, zip=True)],
                         ids=["jpeg", "png", "webp", "png-compressed"])
def test_xmp_digital_source_type_in_each_container_and_form(build, form):
    ev = find_evidence(build(xmp_packet(IPTC + "trainedAlgorithmicMedia", form=form)))
    assert ev.codes == ["xmp:trainedAlgorithmicMedia"]
    assert ev.ai_indicated
    assert ev.detail["xmp"]["digital_source_types"] == [IPTC + "trainedAlgorithmicMedia"]


@pytest.mark.parametrize("term, ai", [("compositeWithTrainedAlgorithmicMedia", True), ("algorithmicMedia", True),
                                      ("compositeSynthetic", True), ("digitalCapture", False),
                                      ("minorHumanEdits", False)])
def test_xmp_source_types_declare_ai_only_for_ai_terms(term, ai):
    ev = find_evidence(jpeg_with_xmp(xmp_packet(IPTC + term)))
    assert ev.codes == [f"xmp:{term}"]
    assert ev.ai_indicated is ai


def test_xmp_unknown_source_type_is_detail_only():
    ev = find_evidence(jpeg_with_xmp(xmp_packet(IPTC + "somethingNew")))
    assert ev.codes == []
    assert ev.detail["xmp"]["digital_source_types"] == [IPTC + "somethingNew"]


def test_xmp_iptc_ai_fields_and_creator_tool():
    packet = xmp_packet(creator_tool="Midjourney v6 (DALL\u00b7E-free)", ai_system="Imagen 3",
                        ai_prompt="a red fox in snow")
    ev = find_evidence(webp_with_xmp(packet))
    assert_ai(ev, "xmp:AISystemUsed", "xmp:AIPromptInformation", "xmp:creatortool:Midjourney",
              "xmp:creatortool:DALL-E")
    assert ev.detail["xmp"]["AISystemUsed"] == "Imagen 3"
    assert ev.detail["xmp"]["AIPromptInformation"] == "a red fox in snow"


def test_xmp_creator_tool_of_an_editor_is_no_evidence():
    assert find_evidence(jpeg_with_xmp(xmp_packet(creator_tool="Adobe Photoshop 25.0"))).codes == []


def test_xmp_found_by_raw_search_in_other_formats():
    gif = gif_with_xmp(xmp_packet(IPTC + "trainedAlgorithmicMedia"))
    assert find_evidence(gif).codes == ["xmp:trainedAlgorithmicMedia"]


def test_tiff_software_and_xmp_tags():
    tiff = encoded(picture(), "TIFF", tiffinfo={305: "Stable Diffusion", 700: xmp_packet(IPTC + "algorithmicMedia")})
    assert_ai(find_evidence(tiff), "exif:software:StableDiffusion", "xmp:algorithmicMedia")


def test_xmp_from_the_pillow_image_when_the_bytes_have_none():
    data = encoded(picture(), "PNG")
    image = Image.open(io.BytesIO(data))
    image.info["xmp"] = xmp_packet(IPTC + "trainedAlgorithmicMedia")
    assert find_evidence(data).codes == []
    assert find_evidence(data, image).codes == ["xmp:trainedAlgorithmicMedia"]


@pytest.mark.parametrize("packet", [
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><unclosed",
    b"<x:xmpmeta>" + b"\xff\xfe garbage \x00" * 10 + b"</x:xmpmeta>",
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><p:DigitalSourceType>' + (IPTC + "trainedAlgorithmicMedia").encode()
    + b"</x:xmpmeta>",  # the value is there, but the XML is broken: no code from unparsed XMP
], ids=["unclosed", "binary", "mismatched-tags"])
def test_malformed_xmp_is_a_detail_note(packet):
    ev = find_evidence(jpeg_with_xmp(packet))
    assert ev.codes == []
    assert ev.detail["errors"] and ev.detail["errors"][0].startswith("xmp: ")


def test_billion_laughs_xmp_is_refused_before_expansion():
    ev = find_evidence(png_with_xmp(billion_laughs_xmp()))
    assert ev.codes == []
    assert "DTDForbidden" in ev.detail["errors"][0]


def test_deeply_nested_xmp_parses_in_bounded_work():
    depth = 20_000
    nested = "<p:DigitalSourceType>" * depth + "x" + "</p:DigitalSourceType>" * depth
    packet = (f'<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:p="urn:p">{nested}'
              f'<p:DigitalSourceType>{IPTC}algorithmicMedia</p:DigitalSourceType></x:xmpmeta>').encode()
    assert find_evidence(png_with_xmp(packet)).codes == ["xmp:algorithmicMedia"]


def test_oversized_xmp_packet_is_not_parsed():
    packet = xmp_packet(IPTC + "trainedAlgorithmicMedia").replace(b"<rdf:RDF", b" " * (2 << 20) + b"<rdf:RDF")
    ev = find_evidence(png_with_xmp(packet))
    assert ev.codes == []
    assert "not parsed" in ev.detail["errors"][0]


# Generator text chunks.

@pytest.mark.parametrize("chunks, codes", [
    ({"parameters": A1111}, ["png:parameters"]),
    ({"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}, ["comfyui:prompt", "comfyui:workflow"]),
    ({"Software": "NovelAI", "Comment": NOVELAI_COMMENT, "Source": "NovelAI Diffusion V4"},
     ["novelai:comment", "png:software:NovelAI"]),
    ({"invokeai_metadata": '{"generation_mode": "txt2img", "steps": 30}'}, ["invokeai:metadata"]),
    ({"sd-metadata": '{"model": "stable diffusion", "image": {"steps": 50}}'}, ["invokeai:sd-metadata"]),
    ({"Dream": '"a cat" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'}, ["invokeai:dream"]),
    ({"fooocus_scheme": "fooocus", "parameters": '{"prompt": "a cat", "version": "Fooocus v2.5.5"}'},
     ["fooocus:parameters", "fooocus:scheme"]),
    ({"prompt": "a cat", "negative_prompt": "blurry", "use_stable_diffusion_model": "sd-v1-4"},
     ["easydiffusion:metadata"]),
], ids=["webui", "comfyui", "novelai", "invokeai", "invokeai-legacy", "invokeai-dream", "fooocus", "easydiffusion"])
@pytest.mark.parametrize("chunk_kind", ["tEXt", "zTXt", "iTXt"])
def test_generator_png_text_chunks(chunks, codes, chunk_kind):
    data = png_with_text(zip=chunk_kind != "tEXt", itxt=chunk_kind == "iTXt", **chunks)
    ev = find_evidence(data)
    assert ev.codes == codes
    assert ev.ai_indicated


def test_text_over_the_field_limit_is_read_up_to_it_and_the_detail_says_so():
    """A ComfyUI PNG whose workflow inflates to 1.4 MB: the graph is still recognised from its first MAX_FIELD bytes."""
    from images import with_png_text_bomb
    workflow = COMFY_WORKFLOW[:-1] + ', "extra": "' + "x" * 1_400_000 + '"}'
    ev = find_evidence(with_png_text_bomb(png_with_text(prompt=COMFY_PROMPT), b"workflow", workflow.encode()))
    assert ev.codes == ["comfyui:prompt", "comfyui:workflow"]
    assert ev.detail["truncated"] == ["png:workflow: over 1,048,576 bytes, only the first 1,048,576 read"]
    assert "truncated" not in find_evidence(png_with_text(workflow=COMFY_WORKFLOW)).detail


def test_webui_parameters_kept_in_detail():
    ev = find_evidence(png_with_text(parameters=A1111))
    assert ev.detail["png"]["parameters"] == A1111


@pytest.mark.parametrize("charset", ["unicode-be", "unicode-le", "ascii", "bare"])
@pytest.mark.parametrize("build", [jpeg_with_exif, webp_with_exif], ids=["jpeg", "webp"])
def test_webui_parameters_in_exif_user_comment(build, charset):
    ev = find_evidence(build(user_comment=user_comment(A1111, charset)))
    assert ev.codes == ["exif:parameters"]
    assert ev.detail["exif"]["user_comment"] == A1111


def test_ordinary_user_comment_is_no_evidence():
    assert find_evidence(jpeg_with_exif(user_comment=user_comment("Taken on holiday", "unicode-be"))).codes == []


def test_comfyui_graph_in_webp_exif():
    data = webp_with_exif(Model="prompt:" + COMFY_PROMPT, Make="workflow:" + COMFY_WORKFLOW)
    assert find_evidence(data).codes == ["comfyui:prompt", "comfyui:workflow"]


@pytest.mark.parametrize("software, name", [
    ("Midjourney", "Midjourney"), ("DALL\u00b7E 3".encode(), "DALL-E"), ("DALL-E", "DALL-E"),
    ("Stable Diffusion XL", "StableDiffusion"), ("Adobe Firefly", "Firefly"), ("Google Imagen", "Imagen"),
    ("NovelAI", "NovelAI"), ("ComfyUI", "ComfyUI"), ("AUTOMATIC1111 webui", "Automatic1111"),
    ("InvokeAI 4.2", "InvokeAI"), ("Fooocus", "Fooocus"), ("Leonardo.Ai", "Leonardo"), ("ideogram", "Ideogram"),
    ("FLUX.1 [dev]", "Flux"),
])
def test_known_generator_in_exif_software(software, name):
    ev = find_evidence(jpeg_with_exif(software=software))
    assert ev.codes == [f"exif:software:{name}"]
    assert ev.detail["exif"]["software"] == (software.decode() if isinstance(software, bytes) else software)


@pytest.mark.parametrize("software", ["Imagenomic Portraiture", "Editor de Imagen", "FireflyCam 2.1", "fluxtool",
                                      "Midjourneyman", "GIMP 2.10", "darktable 4.6"])
def test_generator_names_need_word_boundaries(software):
    assert find_evidence(jpeg_with_exif(software=software)).codes == []


# Hostile input.

def test_five_megabyte_text_chunk_is_bounded():
    huge = A1111 + ", " + "x" * (5 << 20)
    ev = find_evidence(png_with_text(parameters=huge))
    assert ev.codes == ["png:parameters"]
    assert len(ev.detail["png"]["parameters"]) == MAX_DETAIL_TEXT


def test_five_megabyte_junk_chunks_are_no_evidence():
    junk = "{" + "\"a\": 1, " * (5 << 17)
    assert find_evidence(png_with_text(Comment=junk, prompt=junk, workflow=junk)).codes == []


def test_compressed_text_bomb_is_inflated_only_to_the_limit():
    bomb = zlib.compress(b"Steps: 1, Sampler: x " + b"\x00" * (64 << 20), 9)  # 64 MB inflated, ~64 KB stored
    data = png_with_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
    ev = find_evidence(data)
    assert ev.codes == ["png:parameters"]
    assert len(ev.detail["png"]["parameters"]) == MAX_DETAIL_TEXT


@pytest.mark.parametrize("data", [
    b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00\x00", b"\xff\xd8\xff\xeb\xff\xffJP",
    b"\x89PNG\r\n\x1a\n" + b"\xff\xff\xff\xfftEXt", b"RIFF\x00\x00\x00\x00WEBPC2PA\xff\xff\xff\xff",
    b"II*\x00\xff\xff\xff\xff", b"<x:xmpmeta" + b"a" * 100, bytes(range(256)) * 4,
], ids=["empty", "soi", "zero-length-segment", "short-app11", "huge-png-chunk", "huge-riff-chunk", "tiff-bad-ifd",
        "unterminated-xmp", "binary"])
def test_truncated_and_broken_containers_never_raise(data):
    ev = find_evidence(data)
    assert isinstance(ev, Evidence)
    json.dumps(ev.detail)


def test_corrupt_exif_is_a_note_not_a_crash():
    garbage = b"MM\x00\x2a\x00\x00\x00\x08\xff\xff" + np.random.default_rng(1).bytes(40)
    jpeg = encoded(picture(), "JPEG")
    data = jpeg[:2] + b"\xff\xe1" + (len(garbage) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + garbage + jpeg[2:]
    assert find_evidence(data).codes == []


def test_mutated_marker_files_never_raise(without_c2pa_python, monkeypatch):
    # find_evidence's last-resort guard turns any exception into a note, so calling it proves nothing: without
    # the guard, each parser must handle hostile bytes itself.
    def unguarded(found, source, function, *args):
        return function(*args)

    monkeypatch.setattr(evidence, "_guarded", unguarded)
    rng = np.random.default_rng(7)
    originals = [jpeg_with_app11(jumbf_store(IPTC + "trainedAlgorithmicMedia")), png_with_text(parameters=A1111),
                 webp_with_xmp(xmp_packet(IPTC + "algorithmicMedia")), jpeg_with_exif(software="Midjourney",
                                                                                      user_comment=b"UNICODE\x00abc"),
                 heif_with_c2pa(jumbf_store(IPTC + "trainedAlgorithmicMedia"))]
    for original in originals:
        for _ in range(40):
            data = bytearray(original)
            for position in rng.integers(0, len(data), size=8):
                data[position] = rng.integers(0, 256)
            cut = int(rng.integers(len(data) // 2, len(data) + 1))
            ev = find_evidence(bytes(data[:cut]))
            json.dumps(ev.detail)


# The codes' meaning.

def test_codes_indicate_ai():
    assert not codes_indicate_ai([])
    assert not codes_indicate_ai([""])  # "".split(";")
    assert not codes_indicate_ai(["c2pa:present", "c2pa:digitalCapture", "xmp:humanEdits"])
    assert codes_indicate_ai(["c2pa:present", "c2pa:trainedAlgorithmicMedia"])
    assert codes_indicate_ai(["png:parameters"])
    assert codes_indicate_ai(["xmp:AISystemUsed"])
    assert codes_indicate_ai(["exif:software:Midjourney"])


def test_evidence_stays_structured_until_the_report_row_and_round_trips():
    ev = find_evidence(png_with_text(parameters=A1111, Software="ComfyUI"))
    result = Result(input="x", evidence=ev.codes, evidence_detail=ev.detail)
    row = result.to_dict()
    assert row["evidence"] == "png:parameters;png:software:ComfyUI"
    assert json.loads(row["evidence_detail"]) == ev.detail
    assert Result.from_row(json.loads(json.dumps(row))) == result and result.declares_ai


def test_compressed_text_is_never_inflated_past_the_limit():
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)
    keyword, text = containers.png_text(b"zTXt", b"parameters\x00\x00" + bomb)
    assert keyword == "parameters" and len(text) == MAX_FIELD + 1
    keyword, text = containers.png_text(b"iTXt", b"parameters\x00\x01\x00en\x00\x00" + bomb)
    assert len(text) == MAX_FIELD + 1


@pytest.mark.parametrize("format", ["HEIF", "AVIF"])
def test_heif_and_avif_exif_and_xmp_are_read_from_the_bytes_alone(format):
    # EXIF and XMP are items of the BMFF 'meta' box: a scan hands find_evidence only the file's bytes
    data = encoded(picture(), format, exif=exif(software="Midjourney v6").tobytes(),
                   xmp=xmp_packet(IPTC + "trainedAlgorithmicMedia"))
    assert_ai(find_evidence(data), "exif:software:Midjourney", "xmp:trainedAlgorithmicMedia")


def test_heif_evidence_reaches_the_scan_report(tmp_path):
    from ipdscan.model.preprocess import Preprocessing
    from ipdscan.scanning.cpu_stage import prepare
    from ipdscan.scanning.item import Item

    data = encoded(picture(), "HEIF", exif=exif(software="DALL-E 3").tobytes())
    sample = prepare(Item("phone.heic", "file"), data, Preprocessing(), max_pixels=10**6)
    assert sample.columns["evidence"] == ["exif:software:DALL-E"] and codes_indicate_ai(sample.columns["evidence"])
