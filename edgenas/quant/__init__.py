"""Quantization: the precisions edgenas knows and the calibration data quantizers need.

The quantizers themselves come from the runtimes' own toolchains (onnxruntime.quantization,
litert-torch's PT2E flow / ai-edge-quantizer); this package only holds what they share.
"""
