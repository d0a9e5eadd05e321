"""Export and deployment check: the artifacts a device runs, and the evidence they are fit to ship.

One module per idea: ``onnx`` and ``tflite`` write and describe the artifacts, ``deployability``
says which TFLite ops XNNPACK runs and which an older runtime cannot load, ``legacy_runtime``
loads a model in another Python (a real ``tflite_runtime`` 2.14), ``parity`` compares the
runtimes' outputs with PyTorch, ``gate`` measures the artifact against a latency target, and
``pipeline`` ties them into ``edgenas export``.
"""
