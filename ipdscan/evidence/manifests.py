"""C2PA manifest stores: read and validated offline with c2pa-python where it is installed, else scanned raw
for their digital source types and marked unverified."""
from __future__ import annotations

import io
import json
import re
from functools import cache

from .containers import Collector
from .vocabulary import IPTC_SOURCE_TYPE_URI, clip, generator_names, source_type_term

C2PA_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "heif": "image/heif", "avif": "image/avif"}
# Read manifests without touching the network: no remote manifests, no OCSP, no hosts at all.
C2PA_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}, "core": {"allowed_network_hosts": []}}
_SOURCE_TYPE_IN_BYTES = re.compile(rb"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]{1,64})")


# Readers: raw metadata -> codes and detail.

def read_c2pa(found: Collector, data: bytes, container: str):
    if not found.c2pa:
        return
    info = {"containers": sorted({where for where, _ in found.c2pa})}
    verified = _read_c2pa_verified(data, C2PA_MIME[container], info) if c2pa_module() else None
    if verified is None:
        info["verified"] = False
        info.setdefault("note", "unverified: a raw scan of the manifest bytes (c2pa-python is not installed)")
        verified = {"digital_source_types": sorted({
            IPTC_SOURCE_TYPE_URI + term.decode() for _, store in found.c2pa
            for term in _SOURCE_TYPE_IN_BYTES.findall(store)})}
    info.update(verified)
    found.add("c2pa:present", "c2pa", **info)
    for uri in info["digital_source_types"]:
        term = source_type_term(uri)
        if term:
            found.codes.add(f"c2pa:{term}")
    for name in generator_names(info.get("claim_generator", "")):
        found.codes.add(f"c2pa:generator:{name}")


@cache
def c2pa_module():
    try:
        import c2pa
    except Exception:  # not installed, or its native library cannot load here
        return None
    return c2pa


def _read_c2pa_verified(data: bytes, mime: str, info: dict) -> dict | None:
    """The manifest store as c2pa-python reads and validates it, offline; None (with a note) if it cannot."""
    c2pa = c2pa_module()
    try:
        with c2pa.Context.from_dict(C2PA_OFFLINE) as context, \
                c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            return _summarise_store(json.loads(reader.json()))
    except Exception as exc:  # c2pa.C2paError for a malformed store, anything else for a binding problem
        info["note"] = f"unverified: c2pa-python could not read it ({clip(str(exc), 200)}); a raw scan instead"
        return None


def _summarise_store(store: dict) -> dict:
    """Claim generator, digital source types and validation from c2pa-python's manifest store report."""
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest")) or {}
    generator = active.get("claim_generator") or ""
    if not generator:
        generator_info = active.get("claim_generator_info") or []
        if isinstance(generator_info, dict):
            generator_info = [generator_info]
        generator = ", ".join(str(item.get("name", "")) for item in generator_info if isinstance(item, dict))
    source_types = set()
    for manifest in manifests.values():  # ingredients' manifests too: an edit of an AI image is still one
        for assertion in manifest.get("assertions") or []:
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                for action in (assertion.get("data") or {}).get("actions") or []:
                    if isinstance(action, dict) and isinstance(action.get("digitalSourceType"), str):
                        source_types.add(action["digitalSourceType"])
    return {"verified": True, "claim_generator": clip(generator, 200),
            "digital_source_types": sorted(source_types),
            "validation_state": store.get("validation_state", ""),
            "validation_status": [str(status.get("code")) for status in store.get("validation_status") or []][:20]}
