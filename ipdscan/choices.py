"""The closed sets of values the options take, and the exit codes, in a module that imports nothing: the CLI's
help and argument checks use them without loading torch (``pipeline``, ``runtime`` and ``job`` import them)."""
DECODE_CHOICES = ("auto", "workers", "device")
PRECISIONS = ("auto", "fp32", "bf16", "mixed")
# The exit codes (verdict.py says when each applies): 0 the scan finished, 1 flagged, 2 an error.
EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2
