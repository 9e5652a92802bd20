"""Small random-weights checkpoints in the real format, for tests that need a weights file of their own.

    make_checkpoint(path, variant="layer2", seed=0, half=False, nan=False)   write one -> path

Most tests want the session's shared one: the ``checkpoint`` fixture (tests/conftest.py).
"""
import torch

from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing
from ipdscan.model.weights import save_checkpoint


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
