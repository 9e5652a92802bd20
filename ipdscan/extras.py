"""What a command needs beyond the base install, and the one line that says which extra brings it.

The base install scans on the CPU with ONNX Runtime; PyTorch comes with the extras that need it (``gpu``,
``train``, ``ray``). A command that needs torch where it is missing ends with ``MissingExtra``: one line naming
the pip command, exit 2 (``cli.support.failures_exit_2`` prints it).
"""
from __future__ import annotations


class MissingExtra(ValueError):
    """A package that an extra installs is missing: one line for the user, exit 2."""


def require_torch(command: str, extra: str, why: str = "") -> None:
    """MissingExtra unless ``import torch`` works; ``command`` as the user typed it after ``ipdscan``."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtra(f"'ipdscan {command}' needs PyTorch{why}: pip install 'ipdscan[{extra}]'") from None
