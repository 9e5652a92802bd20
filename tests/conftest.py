import pytest
import torch

from ipdscan.model import IPDConfig, IPDNet
from ipdscan.preprocess import Preprocessing
from ipdscan.weights import save_checkpoint


def make_checkpoint(path, variant="layer2", seed=0, half=False, nan=False):
    """A small random-weights checkpoint in the real format (what 'ipdscan train' writes); ``nan``: one of its
    parameters NaN, as a diverged training run leaves them."""
    torch.manual_seed(seed)
    model = IPDNet(IPDConfig(variant=variant))
    if nan:
        with torch.no_grad():
            next(model.head.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(path, model, Preprocessing(), name=f"test-{variant}", half=half,
                    provenance={"purpose": "tests", "seed": seed})
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pt")


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
