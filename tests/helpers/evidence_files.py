"""Small image files carrying provenance and generator metadata, built in memory for the evidence tests.

    camera_jpeg()                       a plain photo-like JPEG with ordinary EXIF (Make, Model, Software, dates)
    png_with_text(**chunks)             a PNG with tEXt chunks (zip=True: zTXt; itxt=True: iTXt)
    jpeg_with_exif(...), webp_with_exif(...)    EXIF Software / UserComment / Make / Model / ImageDescription
    xmp_packet(...)                     an XMP packet declaring a digital source type, AI fields or a CreatorTool
    jpeg_with_xmp, png_with_xmp, webp_with_xmp, gif_with_xmp    that packet in each container
    jumbf_store(uri)                    a hand-built C2PA-labelled JUMBF manifest store holding a source-type URI
    jpeg_with_app11, png_with_cabx, webp_with_c2pa, heif_with_c2pa   that store in each container
    c2pa_signed(format, source_type)    a really signed file (needs c2pa-python; test certificates made here)
"""
from __future__ import annotations

import datetime
import io
import struct
import zlib

import numpy as np
from PIL import ExifTags, Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = ("a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
         "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd_xl_base_1.0")
COMFY_PROMPT = '{"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}}'
COMFY_WORKFLOW = '{"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}'
NOVELAI_COMMENT = '{"prompt": "a cat", "steps": 28, "sampler": "k_euler", "uc": "lowres", "scale": 5}'


def picture(width: int = 32, height: int = 24, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 4 * x, 50 + 5 * y, 120 + 2 * (x - y)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))


def encoded(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def exif(software: str | bytes | None = None, user_comment: bytes | None = None, **tags: str) -> Image.Exif:
    """EXIF with IFD0 text tags (by ExifTags.Base name) and the Exif IFD's UserComment."""
    data = Image.Exif()
    if software is not None:
        data[ExifTags.Base.Software] = software
    for name, value in tags.items():
        data[ExifTags.Base[name]] = value
    if user_comment is not None:
        data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = user_comment
    return data


def camera_jpeg() -> bytes:
    data = exif(software="Firmware Version 1.2.0", Make="Canon", Model="Canon EOS R5", DateTime="2024:01:02 03:04:05")
    data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:01:02 03:04:05"
    return encoded(picture(), "JPEG", quality=90, exif=data)


def jpeg_with_exif(**fields) -> bytes:
    return encoded(picture(), "JPEG", quality=90, exif=exif(**fields))


def webp_with_exif(**fields) -> bytes:
    return encoded(picture(), "WEBP", quality=80, exif=exif(**fields))


def user_comment(text: str, charset: str) -> bytes:
    """An EXIF UserComment: "unicode-be", "unicode-le", "ascii" or "bare" (no 8-byte prefix at all)."""
    return {"unicode-be": b"UNICODE\x00" + text.encode("utf-16-be"),
            "unicode-le": b"UNICODE\x00" + text.encode("utf-16-le"),
            "ascii": b"ASCII\x00\x00\x00" + text.encode("ascii"),
            "bare": text.encode("utf-8")}[charset]


def png_with_text(zip: bool = False, itxt: bool = False, **chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if itxt:
            info.add_itxt(key, value, zip=zip)
        else:
            info.add_text(key, value, zip=zip)
    return encoded(picture(), "PNG", pnginfo=info)


def png_with_chunk(kind: bytes, body: bytes, png: bytes | None = None) -> bytes:
    """``png`` (a plain one by default) with a raw chunk inserted right after IHDR."""
    png = png or encoded(picture(), "PNG")
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    after_ihdr = 8 + 8 + 13 + 4
    return png[:after_ihdr] + chunk + png[after_ihdr:]


def xmp_packet(source_type: str | None = None, form: str = "attribute", creator_tool: str | None = None,
               ai_system: str | None = None, ai_prompt: str | None = None) -> bytes:
    """An XMP packet; ``form`` puts the DigitalSourceType in an "attribute", "element" text or "resource"."""
    attributes, elements = [], []
    if source_type is not None:
        if form == "attribute":
            attributes.append(f'Iptc4xmpExt:DigitalSourceType="{source_type}"')
        elif form == "element":
            elements.append(f"<Iptc4xmpExt:DigitalSourceType>{source_type}</Iptc4xmpExt:DigitalSourceType>")
        else:
            elements.append(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{source_type}"/>')
    if creator_tool is not None:
        attributes.append(f'xmp:CreatorTool="{creator_tool}"')
    if ai_system is not None:
        elements.append(f"<Iptc4xmpExt:AISystemUsed>{ai_system}</Iptc4xmpExt:AISystemUsed>")
    if ai_prompt is not None:
        elements.append("<Iptc4xmpExt:AIPromptInformation><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                        f"{ai_prompt}</rdf:li></rdf:Alt></Iptc4xmpExt:AIPromptInformation>")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" {" ".join(attributes)}>{"".join(elements)}'
            '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>').encode()


def billion_laughs_xmp() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return (f'<?xml version="1.0"?><!DOCTYPE x:xmpmeta [{"".join(entities)}]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia" Iptc4xmpExt:AISystemUsed="&lol9;"/>'
            '</rdf:RDF></x:xmpmeta>').encode()


def jpeg_with_xmp(packet: bytes) -> bytes:
    return encoded(picture(), "JPEG", quality=90, xmp=packet)


def png_with_xmp(packet: bytes, zip: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8"), zip=zip)
    return encoded(picture(), "PNG", pnginfo=info)


def webp_with_xmp(packet: bytes) -> bytes:
    return encoded(picture(), "WEBP", quality=80, xmp=packet)


def gif_with_xmp(packet: bytes) -> bytes:
    """A GIF with XMP's application extension: the raw packet, then the 258-byte "magic trailer" that makes a
    GIF reader skipping sub-blocks land on the block terminator."""
    gif = b"GIF89a" + encoded(picture(), "GIF")[6:]  # extensions are GIF89a's
    extension = b"!\xff\x0bXMP DataXMP" + packet + b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return gif[:-1] + extension + gif[-1:]  # before the trailer ";"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jumbf_store(source_type_uri: str, filler: int = 0) -> bytes:
    """A C2PA manifest store as JUMBF boxes: the "c2pa" description box, then a manifest whose actions assertion
    holds ``source_type_uri`` as a CBOR text string, after ``filler`` bytes of padding (to span JPEG segments)."""
    c2pa_uuid = b"c2pa" + bytes.fromhex("00110010800000aa00389b71")
    description = _box(b"jumd", c2pa_uuid + b"\x03" + b"c2pa\x00")
    uri = source_type_uri.encode()
    cbor = (b"\xa1\x67actions\x81\xa2\x66action\x6cc2pa.created\x71digitalSourceType"
            + b"\x78" + bytes([len(uri)]) + uri)
    assertion = _box(b"jumb", _box(b"jumd", b"cbor" + bytes(12) + b"\x03c2pa.actions\x00") + _box(b"cbor", cbor))
    manifest = _box(b"jumb", _box(b"jumd", b"c2ma" + bytes(12) + b"\x03urn:c2pa:test\x00")
                    + _box(b"free", bytes(filler)) + assertion)
    return _box(b"jumb", description + manifest)


def jpeg_with_app11(store: bytes, segment_payload: int = 65_000) -> bytes:
    """A JPEG with ``store`` in APP11 segments: "JP", box instance 1, sequence numbers from 1, and in every
    segment after the first, the store's 8-byte LBox/TBox header repeated, as the JPEG-XT boxes do."""
    header, body = store[:8], store[8:]
    segments, sequence = [], 1
    while body or sequence == 1:
        piece, body = body[:segment_payload], body[segment_payload:]
        payload = b"JP" + struct.pack(">HI", 1, sequence) + header + piece
        segments.append(b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload)
        sequence += 1
    jpeg = encoded(picture(), "JPEG", quality=90)
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def png_with_cabx(store: bytes) -> bytes:
    return png_with_chunk(b"caBX", store)


def webp_with_c2pa(store: bytes) -> bytes:
    webp = encoded(picture(), "WEBP", quality=80)
    chunk = b"C2PA" + struct.pack("<I", len(store)) + store + b"\x00" * (len(store) & 1)
    body = webp[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def heif_with_c2pa(store: bytes, format: str = "HEIF") -> bytes:
    """A HEIF (or AVIF) picture with ``store`` in a C2PA 'uuid' box, appended so no item offset moves."""
    body = bytes.fromhex("d8fec3d61b0e483c92975828877ec481") + bytes(4) + b"manifest\x00" + bytes(8) + store
    return encoded(picture(), format) + struct.pack(">I", 8 + len(body)) + b"uuid" + body


def _test_certificates():
    """A throwaway CA and an ES256 signing certificate it issued: (certificate chain PEM, private key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipdscan tests")])

    def usage(**allowed):
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        return x509.KeyUsage(**{**flags, **allowed})

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ipdscan test CA")).issuer_name(name("ipdscan test CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("ipdscan test signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (leaf, ca))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, private


def c2pa_signed(format: str, source_type: str, generator: str = "ipdscan-tests") -> bytes:
    """A picture in ``format`` (JPEG, PNG, WEBP, HEIF, AVIF) with a signed C2PA manifest: c2pa.created from ``source_type``."""
    import c2pa

    chain, private = _test_certificates()
    manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": IPTC + source_type}]}}]}
    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                "builder": {"thumbnail": {"enabled": False}}}
    source, signed = io.BytesIO(encoded(picture(), format)), io.BytesIO()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
    with c2pa.Context.from_dict(settings) as context, c2pa.Builder(manifest, context=context) as builder:
        builder.sign(signer, Image.MIME[format], source, signed)
    return signed.getvalue()
