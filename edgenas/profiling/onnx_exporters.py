"""Which ONNX exporter writes a single-op model for profiling, and the check that keeps it exact.

The dynamo exporter (``torch.onnx.export(dynamo=True)``) is what ``edgenas export`` ships, but it
takes ~1.4 s per single-op model here against ~0.06 s for the legacy TorchScript exporter, and
204 op models made it 60% of an onnxruntime table build. What onnxruntime times is the graph
*after* its own optimisation (ORT_ENABLE_ALL, the level ``ort_session`` sets), so for an op kind
whose two exports optimise to the same graph (same node types, attributes and weight shapes,
equal outputs) the faster exporter is exact. ``LEGACY_EXACT_OPS`` lists those kinds;
``tests/test_onnx_exporters.py`` re-checks every one of them against dynamo, and
``graph_difference`` is the check itself.

One difference is cleaned up rather than tolerated: the legacy exporter folds an eval-mode
BatchNorm into the Conv before it and keeps the folded bias even when it is all zeros (a freshly
built op's BatchNorm has zero mean and shift), where dynamo drops it; equal biases are shared
through Identity nodes. Dropping an all-zero bias changes no output and gives dynamo's graph.
"""

from __future__ import annotations

from pathlib import Path

#: op kinds whose legacy export optimises to dynamo's graph (tests/test_onnx_exporters.py checks each);
#: an op kind not listed (a plug-in's, say) keeps the dynamo exporter until it is checked and added
LEGACY_EXACT_OPS = frozenset({
    "stem", "relu_conv_bn", "factorized_reduce", "Logits", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3",
    "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "skip_connect", "Conv", "Conv_1", "expanded_conv",
    "nb201_stem", "nb201_resblock", "nb201_head", "nor_conv_1x1", "nor_conv_3x3"})


def export_op_legacy(module, input_shape, path: Path) -> None:
    """Legacy-exporter ONNX of a single op, all-zero Conv biases dropped (see the module docstring)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edgenas.profiling.onnxruntime_backend import export_onnx

    export_onnx(module, input_shape, path, prefer_dynamo=False)
    model = onnx.load(str(path))
    graph = model.graph
    consts = {i.name: i for i in graph.initializer}
    # the exporter shares equal initializers, handing the copies out through Identity nodes
    consts.update({n.output[0]: consts[n.input[0]] for n in graph.node
                   if n.op_type == "Identity" and n.input[0] in consts})
    changed = False
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) == 3 and node.input[2] in consts \
                and not np.any(numpy_helper.to_array(consts[node.input[2]])):
            del node.input[2]
            changed = True
    if changed:
        outputs = {o.name for o in graph.output}
        while True:  # drop Identity nodes nothing reads any more, then initializers nothing reads
            used = {name for n in graph.node for name in n.input} | outputs
            dead = [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in used]
            if not dead:
                break
            for n in dead:
                graph.node.remove(n)
        keep = [i for i in graph.initializer if i.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        onnx.save(model, str(path))


def optimized_graph(path: Path, threads: int = 1):
    """(onnx ModelProto after onnxruntime's ORT_ENABLE_ALL optimisation, its session)."""
    import onnx

    from edgenas.profiling.onnxruntime_backend import ort_session

    out = Path(str(path) + ".optimized.onnx")
    session = ort_session(path, threads, optimized_model_filepath=str(out))
    return onnx.load(str(out)), session


def graph_signature(model) -> list[tuple]:
    """The optimised graph as onnxruntime runs it: per node, in order, its domain, type, attributes
    (schema defaults filled in, so an explicit default equals an omitted one) and the shapes of its
    weight inputs. Tensor names are left out: exporters name them differently."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        attrs = {}
        try:
            schema = onnx.defs.get_schema(n.op_type, max_inclusive_version=_opset(model, n.domain), domain=n.domain)
            for name, a in schema.attributes.items():
                if a.default_value is not None and a.default_value.type:
                    attrs[name] = _value(onnx.helper.get_attribute_value(a.default_value), numpy_helper)
        except onnx.defs.SchemaError:
            pass  # an onnxruntime contrib op (ReorderInput, FusedConv...): no schema in onnx, attributes as written
        for a in n.attribute:
            attrs[a.name] = _value(onnx.helper.get_attribute_value(a), numpy_helper)
        nodes.append((n.domain, n.op_type, tuple(sorted(attrs.items())), tuple(inits.get(i) for i in n.input)))
    return nodes


def graph_difference(reference_path: Path, candidate_path: Path) -> str:
    """'' when both models optimise to the same graph with equal outputs, else what differs."""
    import numpy as np

    from edgenas.profiling.inputs import example_input

    (ref, ref_sess), (cand, cand_sess) = optimized_graph(reference_path), optimized_graph(candidate_path)
    a, b = graph_signature(ref), graph_signature(cand)
    if a != b:
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return f"node {i}: {x} != {y}"
        return f"{len(a)} nodes != {len(b)} nodes"
    inp = ref_sess.get_inputs()[0]
    x = example_input(tuple(inp.shape))
    ya = ref_sess.run(None, {inp.name: x})[0]
    yb = cand_sess.run(None, {cand_sess.get_inputs()[0].name: x})[0]
    if not np.array_equal(ya, yb):
        return f"outputs differ by up to {float(np.abs(ya - yb).max()):.3g}"
    return ""


def _opset(model, domain: str) -> int:
    for o in model.opset_import:
        if o.domain == domain or (domain in ("", "ai.onnx") and o.domain in ("", "ai.onnx")):
            return o.version
    return 1


def _value(v, numpy_helper):
    if hasattr(v, "dims"):  # a TensorProto attribute
        return ("tensor", numpy_helper.to_array(v).tolist())
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return tuple(x.decode() if isinstance(x, bytes) else x for x in v)
    return v
