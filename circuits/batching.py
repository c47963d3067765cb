"""Batch circuits for graphs with a fixed batch: N copies of the graph side by side.

ezkl batches a model by fixing its symbolic batch axis to N (``variables``). A graph whose
batch is fixed (a hand-written graph, or one that hard-codes the batch in a Reshape) has no
such axis, so proofmint builds one: a single input of N x the original leading dimension,
sliced into N pieces, each through its own copy of the graph (the copies share the weights:
initializers are not duplicated), and each output concatenated back along axis 0. The
batched graph has the same input and output layout as an ezkl batch of N, so packing,
proofs, verification and minting are the same for both.
"""

from __future__ import annotations

from pathlib import Path

from proofmint.errors import UsageError
from proofmint.models.onnx_model import OnnxModel, settle_ir


def side_by_side(model: OnnxModel, n: int, dest: Path) -> Path:
    """Write the N-copy graph of ``model`` to ``dest``."""
    import onnx
    from onnx import compose, helper

    proto = onnx.load_model_from_string(model.data)
    graph = proto.graph
    shared = {i.name for i in graph.initializer}
    # Old exporters list initializers among the inputs: those are weights, not inputs.
    real_inputs = [i for i in graph.input if i.name not in shared]
    del graph.input[:]
    graph.input.extend(real_inputs)
    (inp,) = graph.input
    lead = model.input_shape[0]
    for out, shape in zip(graph.output, model.output_shapes):
        if not shape:
            raise UsageError(f"{model.path.name}: output '{out.name}' is a scalar, so copies of the "
                             "graph can't be stacked into a batch — give it a leading dimension")
    nodes, slices = [], []
    for i in range(n):
        copy = compose.add_prefix_graph(graph, f"b{i}_", rename_initializers=False, inplace=False)
        starts, ends, axes = (f"b{i}_slice_{k}" for k in ("starts", "ends", "axes"))
        slices += [helper.make_tensor(starts, onnx.TensorProto.INT64, [1], [i * lead]),
                   helper.make_tensor(ends, onnx.TensorProto.INT64, [1], [(i + 1) * lead]),
                   helper.make_tensor(axes, onnx.TensorProto.INT64, [1], [0])]
        nodes.append(helper.make_node("Slice", [inp.name, starts, ends, axes], [copy.input[0].name],
                                      name=f"b{i}_slice"))
        nodes.extend(copy.node)
    for k, out in enumerate(graph.output):
        nodes.append(helper.make_node("Concat", [f"b{i}_{out.name}" for i in range(n)], [out.name],
                                      axis=0, name=f"batch_concat_{k}"))
    dims = list(model.input_shape)
    dims[0] *= n
    outputs = []
    for out, shape in zip(graph.output, model.output_shapes):
        odims = list(shape)
        odims[0] *= n
        outputs.append(helper.make_tensor_value_info(out.name, out.type.tensor_type.elem_type, odims))
    batched = helper.make_graph(
        nodes, f"{graph.name or 'model'}_x{n}",
        [helper.make_tensor_value_info(inp.name, inp.type.tensor_type.elem_type, dims)],
        outputs, initializer=list(graph.initializer) + slices)
    out_model = helper.make_model(batched, opset_imports=list(proto.opset_import),
                                  ir_version=proto.ir_version)
    settle_ir(out_model)
    onnx.checker.check_model(out_model)
    dest.write_bytes(out_model.SerializeToString())
    return dest
