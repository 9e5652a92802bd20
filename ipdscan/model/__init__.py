"""IPD-Net and what scores with it: the network (ipdnet, efficientnet_lite), the preprocessing (preprocess; torch_preprocess
on the device), checkpoints (weights) and the shipped weights' sha256 pins (pins), the backends (backends picks detector's torch
``Detector`` or onnx_backend's ``OnnxDetector``), device and precision (runtime) and the ONNX export (export).
Nothing is imported here: ``import ipdscan.model.backends`` loads no torch."""
