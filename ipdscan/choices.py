"""The closed sets of values the options take, and the exit codes, in a module that imports nothing: the CLI's
help and argument checks use them without loading torch (``scanning.options``, ``scanning.verdict``,
``model.runtime`` and the ``cli`` modules import them)."""
DECODE_CHOICES = ("auto", "workers", "device")
# What scores the crops (model/backends.py): "auto" is torch on CUDA, else ONNX Runtime where the weights have an .onnx beside them.
BACKEND_CHOICES = ("auto", "torch", "onnxruntime")
PRECISIONS = ("auto", "fp32", "bf16", "mixed")
# The exit codes (scanning/verdict.py says when each applies): 0 the scan finished, 1 flagged, 2 an error.
EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2
