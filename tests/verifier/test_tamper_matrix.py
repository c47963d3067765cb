"""Every visibility combination the CLI offers: it compiles, proves and verifies, and rejects
tampering (one shared behaviour) — or it is refused at compile time with the reason."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import proofmint
from proofmint.encoding import INPUT_VISIBILITIES, OUTPUT_VISIBILITIES, PARAM_VISIBILITIES
from proofmint.errors import UsageError

from .tampering import assert_rejects_tampering

COMBOS = list(itertools.product(INPUT_VISIBILITIES, OUTPUT_VISIBILITIES, PARAM_VISIBILITIES))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-8-3 Gemm-Relu-Gemm graph built by hand (not a zoo model), with one input.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w1, b1 = rng.normal(0, 0.5, (6, 8)).astype(np.float32), rng.normal(0, 0.1, 8).astype(np.float32)
    w2, b2 = rng.normal(0, 0.5, (8, 3)).astype(np.float32), rng.normal(0, 0.1, 3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    d = tmp_path_factory.mktemp("tiny")
    onnx.save(model, d / "model.onnx")
    (d / "input.json").write_text(json.dumps({"input_data": [rng.uniform(-1, 1, 6).round(4).tolist()]}))
    return d


@pytest.mark.parametrize("input_vis,output_vis,param_vis", COMBOS)
def test_visibility_combination(tiny, ws, anvil, tmp_path, input_vis, output_vis, param_vis):
    options = dict(input_visibility=input_vis, output_visibility=output_vis, param_visibility=param_vis)
    if param_vis == "hashed":
        # ezkl gives any weights of one shape the same verifying key: a hash of the params
        # among the instances binds nothing the registry checks, so it is refused, not kept.
        with pytest.raises(UsageError, match="does not bind the weights"):
            proofmint.compile(tiny / "model.onnx", workspace=ws, **options)
        return
    c = proofmint.compile(tiny / "model.onnx", workspace=ws, **options)
    assert c.package.visibility.to_dict() == {"input": input_vis, "output": output_vis, "param": param_vis}
    assert c.package.quantization["relative_max_error"] <= 0.01
    r = proofmint.prove(c.circuit_id, input=tiny / "input.json", out=tmp_path / "p.json", workspace=ws)
    assert not r.failures
    bundle = json.loads(open(r.bundles[0]).read())
    assert (bundle["input"] is None) == (input_vis == "private")
    tried = assert_rejects_tampering(r.bundles[0], c.package, ws, anvil.url, tmp_path)
    assert len(tried) >= 8
