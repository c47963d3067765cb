"""Models saved at opset 6 and IR 3, as old exporters and model zoos wrote them (every
initializer also listed among the graph inputs), built with onnx.helper:
onnxruntime refuses four of the five (NOT_IMPLEMENTED), so the reference run falls back to
onnx.reference; the graph is converted to opset 18 (checked in float), compiled with defaults,
proven, verified, and within 1 % of the float outputs' span."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import proofmint
from proofmint.prover import load_bundle

OUTPUT_SHAPES = {"gemm": [1, 3], "averagepool": [1, 2, 1, 1], "batchnorm": [1, 2, 4, 4],
                 "prelu": [1, 2, 4, 4], "convtranspose": [1, 2, 10, 10]}


def _init(name: str, arr) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def opset6_model(kind: str, seed: int = 0) -> onnx.ModelProto:
    """``kind`` between two layers (Gemm-Relu-Gemm; Conv-<kind>-Conv), stamped opset 6."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    if kind == "gemm":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
        inits = [_init("w1", w(8, 6)), _init("b1", w(6)), _init("w2", w(3, 6)), _init("b2", w(3))]
        nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], broadcast=1),
                 helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], broadcast=1, transB=1)]
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
        inits = [_init("wa", w(3, 2, 3, 3)), _init("ba", w(3)), _init("wb", w(2, 3, 3, 3)), _init("bb", w(2))]
        nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])]
        if kind == "averagepool":
            nodes.append(helper.make_node("AveragePool", ["a"], ["m"], kernel_shape=[2, 2], strides=[2, 2]))
        elif kind == "batchnorm":
            inits += [_init("s", rng.uniform(0.5, 1.5, 3)), _init("t", w(3)), _init("mu", w(3)),
                      _init("var", rng.uniform(0.5, 1.5, 3))]
            nodes.append(helper.make_node("BatchNormalization", ["a", "s", "t", "mu", "var"], ["m"],
                                          epsilon=1e-5, is_test=1))
        elif kind == "prelu":
            inits.append(_init("slope", rng.uniform(0.05, 0.3, (3, 1, 1))))
            nodes.append(helper.make_node("PRelu", ["a", "slope"], ["m"]))
        elif kind == "convtranspose":
            inits.append(_init("wt", w(3, 3, 2, 2)))
            nodes.append(helper.make_node("ConvTranspose", ["a", "wt"], ["m"], strides=[2, 2], kernel_shape=[2, 2]))
        nodes.append(helper.make_node("Conv", ["m", "wb", "bb"], ["y"], kernel_shape=[3, 3]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, OUTPUT_SHAPES[kind])
    listed = [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]  # IR 3 wants them
    model = helper.make_model(helper.make_graph(nodes, kind, [x, *listed], [y], inits),
                              opset_imports=[helper.make_opsetid("", 6)], ir_version=3)
    onnx.checker.check_model(model)
    return model


@pytest.mark.slow  # compiles and proves a model of its own
@pytest.mark.parametrize("kind", list(OUTPUT_SHAPES))
def test_an_opset6_model_is_converted_proven_and_faithful(kind, ws, tmp_path):
    model = opset6_model(kind)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps({"input_data": [np.random.default_rng(1).standard_normal(shape).ravel().tolist()]}))
    c = proofmint.compile(path, workspace=ws)
    pkg = c.package
    assert [r["op"] for r in pkg.calibration_report.rewrites][0] == "opset"
    q = pkg.quantization
    assert q["relative_max_error"] <= 0.01 and q["samples"] >= 16, q
    bundle = proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    assert load_bundle(bundle).max_abs_diff <= 0.01 * q["output_range"] + 1e-9
    print(f"\n{kind} (opset 6): logrows {pkg.logrows}, reference {pkg.reference}, "
          f"max error {100 * q['relative_max_error']:.2f} % of span")
