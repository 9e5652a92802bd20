"""A self-signed test certificate and the TLS contexts that serve and trust it (for https on 127.0.0.1).

    make_certificate(directory)     openssl's self-signed certificate for public.test -> (cert.pem, key.pem)
    tls_contexts_for(cert, key)     (a server context serving it, a client context trusting it)

The ``certificate`` and ``tls_contexts`` fixtures (tests/conftest.py) wrap them, one per test module.
"""
from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

NAME = "public.test"  # the only name the certificate is valid for (not 127.0.0.1)


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name public.test only (not for 127.0.0.1): (cert.pem, key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}"], check=True, capture_output=True, timeout=60)
    return cert, key


def tls_contexts_for(cert: Path, key: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the test server's TLS context, a client context that trusts its certificate)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    trusting.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # a bare self-signed test certificate
    return server_context, trusting
