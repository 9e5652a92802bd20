"""ipdscan: flag AI-generated images in folders and URL lists with IPD-Net.

    import ipdscan
    detector = ipdscan.load_detector()            # the shipped default weights, on CUDA when present
    for result in ipdscan.scan(["photos/"], detector):
        print(result.input, result.score, result.label, result.error_code)
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ipdscan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .pipeline import ScanOptions, scan, scan_batches  # noqa: E402
from .result import Result  # noqa: E402
from .score import Detector, load_detector  # noqa: E402

__all__ = ["Detector", "Result", "ScanOptions", "__version__", "load_detector", "scan", "scan_batches"]
