"""Fixtures shared by every test (tests/cli, tests/library); tests/README.md lists them.

Every fixture that more than one test module uses lives here, none in a helper module (a fixture only one test
module needs may stay in it): a test uses one by naming it, with no import.
Helper modules that are not fixtures (images, evidence_files, http_server, browser, checkpoints, filesystem, tls,
training) live in tests/helpers/, which pyproject's [tool.pytest.ini_options] pythonpath puts on sys.path:
``from images import ...``. No test module imports from another test module.
"""
import builtins
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from browser import Browser, find_chromium
from checkpoints import make_checkpoint
from http_server import LocalServer
from images import encoded, natural
from tls import have_openssl, make_certificate, tls_contexts_for

ROOT = Path(__file__).resolve().parents[1]  # the checkout: what subprocesses import ipdscan (and trainer) from
SUBPROCESS_TIMEOUT = 180  # seconds, for every `python ...` a test starts: a loaded shared CI machine needs slack
# The one environment of every process a test starts: this checkout first on the path (works uninstalled), no
# warnings on stderr (tests read it), and a fixed terminal width for help and tables.
SUBPROCESS_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "80",
                  "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
# What the ``write_report`` fixture writes when a test gives no header or summary of its own.
REPORT_HEADER = {"tool": "ipdscan", "version": "1.2.3", "model": "ipd-test", "variant": "layer2", "threshold": 0.5,
                 "device": "cpu", "start_time": "2024-01-02T03:04:05+00:00", "inputs": ["photos"]}
REPORT_SUMMARY = {"end_time": "2024-01-02T03:05:00+00:00"}
PHOTO_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
                 ".tif": "TIFF", ".tiff": "TIFF"}


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A tiny random-weights layer2 checkpoint file, shared by the session (helpers/checkpoints.py makes others)."""
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture(scope="session")
def detector(checkpoint):
    """The ``checkpoint`` loaded for scoring on the CPU in fp32 (bf16 rounds differently by batch size)."""
    from ipdscan.model.detector import load_detector
    return load_detector(checkpoint, "cpu", "fp32")


@pytest.fixture
def scan(detector):
    """Library scan: ``scan(inputs, detector=None, **ScanOptions fields) -> list[Result]``, in this process
    (workers=0) with the ``detector`` fixture unless another is given."""
    from ipdscan import ScanOptions
    from ipdscan import scan as scan_inputs

    def run(inputs, detector=detector, **options):
        return list(scan_inputs([str(i) for i in inputs], detector, options=ScanOptions(**{"workers": 0, **options})))
    return run


class Cli:
    """``ipdscan`` commands in this process (typer's CliRunner): for tests that check stdout, stderr, exit code."""

    def __init__(self):
        from typer.testing import CliRunner
        self.runner = CliRunner()

    def __call__(self, *args, input=None, env=None):
        """``ipdscan ARGS`` -> click's Result (exit_code, stdout, stderr, output)."""
        return self.invoke(args, input=input, env=env)

    def invoke(self, args, input=None, env=None):
        """``ipdscan`` with the argument list ``args`` -> click's Result."""
        from ipdscan.cli.commands import app
        return self.runner.invoke(app, [str(arg) for arg in args], input=input, env=env)

    def scan(self, *args, input=None, env=None):
        """``ipdscan scan ARGS --workers 0``: decoding in this process, no worker processes to start."""
        return self("scan", *args, "--workers", "0", input=input, env=env)


@pytest.fixture
def cli():
    """In-process CLI runner: ``cli("merge", a, "--out", b)``, ``cli.invoke([...])``, ``cli.scan(folder, ...)`` -> Result."""
    return Cli()


class Processes:
    """Real processes, one timeout (SUBPROCESS_TIMEOUT) and one environment (SUBPROCESS_ENV): for signals,
    torchrun, a real stdin, pipes, and imports (what `--help` loads)."""

    timeout = SUBPROCESS_TIMEOUT
    env = SUBPROCESS_ENV

    def __call__(self, *args, cwd, stdin=None):
        """``python -m ipdscan ARGS`` run to its end -> CompletedProcess (text stdout, stderr)."""
        return self.python("-m", "ipdscan", *args, cwd=cwd, stdin=stdin)

    def python(self, *args, cwd=None, stdin=None):
        """``python ARGS`` (this interpreter) run to its end -> CompletedProcess (text stdout, stderr)."""
        return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=self.env, capture_output=True,
                              text=True, input=stdin, timeout=self.timeout)

    def popen(self, *args, **kwargs):
        """``python ARGS`` started and left running -> Popen; wait on it with ``timeout=run_cli.timeout``."""
        return subprocess.Popen([sys.executable, *map(str, args)], env=self.env, **kwargs)


@pytest.fixture
def run_cli():
    """Subprocess CLI runner: ``run_cli("scan", x, cwd=d, stdin=...)``; also ``.python``, ``.popen``, ``.env``."""
    return Processes()


# A sitecustomize that makes ``import torch`` (and torchvision) fail, as in the base install, without it.
TORCH_BLOCKER = """import sys


class WithoutTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"No module named {name!r} (blocked: the base install has no torch)")
        return None


sys.meta_path.insert(0, WithoutTorch())
"""


@pytest.fixture(scope="session")
def run_cli_without_torch(tmp_path_factory):
    """``run_cli`` in processes where ``import torch`` raises ImportError, as in the base install (a sitecustomize
    on PYTHONPATH blocks it, in the worker processes too)."""
    folder = tmp_path_factory.mktemp("without-torch")
    (folder / "sitecustomize.py").write_text(TORCH_BLOCKER)
    runner = Processes()
    runner.env = {**SUBPROCESS_ENV, "PYTHONPATH": os.pathsep.join([str(folder), SUBPROCESS_ENV["PYTHONPATH"]])}
    return runner


@pytest.fixture
def write_report():
    """Report writer: ``write_report(path, rows, header=None, summary=None, **open_report options) -> path``, in
    the format its extension names, closed as a finished scan."""
    from ipdscan.reports.writers import open_report

    def write(path, rows, header=None, summary=None, **options):
        writer = open_report(path, REPORT_HEADER if header is None else header, **options)
        for row in rows:
            writer.write(row)
        writer.flush()
        writer.close(REPORT_SUMMARY if summary is None else summary)
        return path
    return write


@pytest.fixture
def photo(tmp_path):
    """Photo factory: ``photo(name, width=64, height=48, seed=0, **save params) -> path``: a natural-looking image
    (images.natural) under tmp_path (or at an absolute path), encoded as its extension names (.jpg, .png, ...)."""
    def make(name, width=64, height=48, seed=0, **params):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded(natural(width, height, seed=seed), PHOTO_FORMATS[path.suffix.lower()], **params))
        return path
    return make


@pytest.fixture
def one_thread():
    """One torch thread: the tests share a small CPU, and OpenMP threads spinning on busy cores cost more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch):
    """The tests' URLs are on 127.0.0.1: a proxy set in the environment running them must not take them
    (test_proxy.py sets its own)."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# --- local files (helpers/filesystem.py has posix, finishes, unblock_fifo, run_unprivileged) ----------------------

@pytest.fixture
def opened_paths(monkeypatch):
    """Every path opened through os.open or open() while the test runs."""
    paths = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, *args, **kwargs):
        paths.append(os.fsdecode(path))
        return real_os_open(path, *args, **kwargs)

    def open_(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            paths.append(os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    return paths


@pytest.fixture
def shared_tmp():
    """A temporary directory that others may enter (0o755; pytest's tmp_path is private to its user), for permission
    tests with filesystem.run_unprivileged."""
    path = tempfile.mkdtemp(prefix="ipdscan-test-")
    os.chmod(path, 0o755)
    yield path
    for directory, subdirectories, _ in os.walk(path):
        for name in subdirectories:
            os.chmod(os.path.join(directory, name), 0o755)
    shutil.rmtree(path)


# --- http, https and a browser (helpers/http_server.py, helpers/tls.py, helpers/browser.py) -----------------------

@pytest.fixture
def http_server():
    """A LocalServer on 127.0.0.1 (helpers/http_server.py lists its routes), closed after the test."""
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for the name public.test only (not for 127.0.0.1): (cert.pem, key.pem)."""
    if not have_openssl():
        pytest.skip("the openssl command is needed to make a test certificate")
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_contexts(certificate):
    """(the test server's TLS context, a client context that trusts its certificate)."""
    return tls_contexts_for(*certificate)


@pytest.fixture(scope="session")
def ncnn_libraries() -> None:
    """The system libraries the ncnn up-samplers' native modules link (Debian's libvulkan1 and libomp5): the test
    skips without them, naming them, except under CI=true, where it fails: .ci/run installs them."""
    missing = []
    for package, library in (("libvulkan1", "libvulkan.so.1"), ("libomp5", "libomp.so.5")):
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(package)
    if missing:
        message = f"the ncnn up-samplers need Debian's {' and '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Headless chromium (helpers/browser.py); skips without it, except under CI=true, where it fails."""
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; the HTML report's tests need it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return Browser(binary)
