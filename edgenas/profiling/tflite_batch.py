"""A single op's batch-B TFLite model made from its batch-1 model without converting again, where exact.

Converting with litert-torch costs seconds per single-op model, and a table at batch 1 and 8
converts every op twice: conversion was 80% of a TFLite table build. For most single ops the
converter's batch-8 file differs from its batch-1 file in nothing but the leading 1 of each
activation tensor's shape (same size, same layout, same weights: the flatbuffer stores a shape
as an int32 vector, so 1 -> 8 changes four bytes per tensor). ``rebatch`` writes those ints into
a copy of the batch-1 file, which gives the batch-8 conversion's bytes, so a table times the very
file converting would have made.

Where that does not hold, ``rebatch`` refuses and the model is converted as before:
- an op whose constant operands can hold the batch size (a SLICE's size, a RESHAPE's target:
  litert lowers a stride-2 pool's padding and ``factorized_reduce`` to SLICEs), i.e. any op not in
  ``BATCH_FREE_OPS``;
- an op kind not in ``REBATCH_EXACT_OPS`` (a plug-in's, say), or an int8 model.
``tests/test_tflite_batch.py`` converts every op structure of the listed kinds at batch 1 and 8 and
checks that ``rebatch`` gives the batch-8 file byte for byte, or refuses.
"""

from __future__ import annotations

from pathlib import Path

#: op kinds whose every structure's batch-8 conversion equals ``rebatch`` of its batch-1 one, or is
#: refused by it (tests/test_tflite_batch.py converts and checks each)
REBATCH_EXACT_OPS = frozenset({
    "stem", "relu_conv_bn", "factorized_reduce", "Logits", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3",
    "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "skip_connect", "Conv", "Conv_1", "expanded_conv"})

#: TFLite builtins whose constant operands (weights, paddings, axes) never hold the batch size
BATCH_FREE_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "RELU", "RELU6", "HARD_SWISH",
    "LOGISTIC", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "PAD"})


def rebatch(path_1: Path, batch: int) -> bytes | None:
    """The batch-``batch`` file of the batch-1 TFLite model at ``path_1``, or None where that is not exact.

    Every tensor without constant data whose shape starts with 1 gets ``batch`` there (its shape
    signature too). None when the model has an op outside ``BATCH_FREE_OPS``, more than one
    subgraph, or an input or output without a leading 1.
    """
    from ai_edge_litert import schema_py_generated as schema

    from edgenas.export.tflite import builtin_names

    data = bytearray(Path(path_1).read_bytes())
    model = schema.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        return None
    names = builtin_names()
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    if any(c.CustomCode() or names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode())) not in BATCH_FREE_OPS
           for c in codes):
        return None
    graph = model.Subgraphs(0)
    activations = set()
    for j in range(graph.TensorsLength()):
        tensor = graph.Tensors(j)
        buffer = model.Buffers(tensor.Buffer())
        if (buffer is None or buffer.DataLength() == 0) and tensor.ShapeLength() and tensor.Shape(0) == 1:
            activations.add(j)
    boundary = [graph.Inputs(i) for i in range(graph.InputsLength())] + \
               [graph.Outputs(i) for i in range(graph.OutputsLength())]
    if not boundary or any(j not in activations for j in boundary):
        return None
    for j in activations:
        tensor = graph.Tensors(j)
        tensor.ShapeAsNumpy()[0] = batch  # a view into ``data``: the int32 in the file
        if tensor.ShapeSignatureLength() and tensor.ShapeSignature(0) == 1:
            tensor.ShapeSignatureAsNumpy()[0] = batch
    return bytes(data)
