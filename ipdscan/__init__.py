"""ipdscan: flag AI-generated images in folders and URL lists with IPD-Net.

    import ipdscan
    detector = ipdscan.load_backend()             # the shipped default weights: torch on CUDA, else ONNX Runtime
    for result in ipdscan.scan(["photos/"], detector):
        print(result.input, result.score, result.label, result.error_code)
"""
# The one place the version is written: pyproject.toml reads it from here ([tool.setuptools.dynamic]), so the
# package does not import importlib.metadata (~0.1 s) at every start to learn its own version.
__version__ = "0.1.0"

HOMEPAGE = "https://github.com/ipdscan/ipdscan"  # [project.urls] Homepage; SARIF's informationUri

# Loaded on first use (PEP 562), not here: `import ipdscan` stays instant, so the command's entry point
# (entry.py) is running before torch starts importing and can turn a Ctrl-C during that import into one line.
_EXPORTS = {"ScanOptions": "scanning.options", "scan": "scanning.pipeline", "scan_batches": "scanning.pipeline",
            "Result": "scanning.result", "Detector": "model.detector", "load_detector": "model.detector",
            "load_backend": "model.backends"}
__all__ = ["Detector", "Result", "ScanOptions", "__version__", "load_backend", "load_detector", "scan", "scan_batches"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ipdscan' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
