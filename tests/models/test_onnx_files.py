"""ONNX files as they come from elsewhere: weights in an external data file, a NonZero over
constants, a model that isn't defined on the given input, a node ezkl panics on."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import proofmint
from proofmint.circuits import locate, samples as samples_mod
from proofmint.encoding import Visibility
from proofmint.errors import EzklPanicError, InvalidModelError
from proofmint.models import corpus, load_onnx

from ..conftest import run_cli


def _save_external(proto, folder, name="model.onnx"):
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, folder / name, save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{name}.data", size_threshold=0)
    return folder / name


def test_weights_in_an_external_file_travel_with_the_model(tmp_path):
    corpus.export("linear", "o18", tmp_path / "inline")
    inline = load_onnx(tmp_path / "inline")
    path = _save_external(onnx.load(tmp_path / "inline" / "model.onnx"), tmp_path / "ext")
    assert (tmp_path / "ext" / "model.onnx.data").stat().st_size > 0
    model = load_onnx(tmp_path / "ext")
    assert model.external_data and model.path == path
    x = np.linspace(-1, 1, inline.input_size)
    assert np.array_equal(model.run(x)[0], inline.run(x)[0])
    # the model is its graph and its weights: its id covers the data file
    onnx.load_model_from_string(model.data)  # self-contained
    assert not any(t.data_location == TensorProto.EXTERNAL for t in onnx.load_model_from_string(model.data).graph.initializer)


def test_a_model_without_its_data_file_is_refused_naming_the_file(tmp_path):
    corpus.export("linear", "o18", tmp_path / "inline")
    path = _save_external(onnx.load(tmp_path / "inline" / "model.onnx"), tmp_path / "ext")
    (path.parent / "model.onnx.data").unlink()
    with pytest.raises(InvalidModelError, match=r"keeps its weights in model\.onnx\.data.*beside the model"):
        load_onnx(path)
    r = run_cli("compile", path.parent, "--workspace", tmp_path / "ws")
    assert r.returncode == 2 and "model.onnx.data" in r.stderr and "Traceback" not in r.stderr


def test_a_nonzero_over_constants_is_no_obstacle_one_over_the_input_is(tmp_path):
    """A causal mask set by index exports as NonZero over a constant (folded); a NonZero of the
    input itself is data-dependent (refused, by name)."""
    corpus.export("gpt_causal", "o18", tmp_path / "gpt")
    assert "NonZero" in load_onnx(tmp_path / "gpt").op_types  # loads: the NonZero folds away
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2, None])
    proto = helper.make_model(helper.make_graph([helper.make_node("NonZero", ["x"], ["y"], name="nz")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(proto, tmp_path / "nz.onnx")
    with pytest.raises(InvalidModelError, match=r"uses NonZero \(node 'nz'\) on values computed from its input"):
        load_onnx(tmp_path / "nz.onnx")


def _sqrt_model(folder, given):
    """y = sqrt(x) @ w: defined only for x >= 0."""
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["s"]), helper.make_node("MatMul", ["s", "w"], ["y"])],
                              "sqrt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), folder / "model.onnx")
    (folder / "input.json").write_text(json.dumps({"input_data": [given]}))
    return load_onnx(folder)


def test_an_input_the_float_model_gives_nan_for_is_refused_saying_so(tmp_path):
    _sqrt_model(tmp_path / "m", [0.5, -0.2, 0.9])
    r = run_cli("compile", tmp_path / "m", "--workspace", tmp_path / "ws")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "gives NaN or infinity for" in r.stderr and "input.json" in r.stderr
    assert "isn't defined there" in r.stderr and "tolerance nan" not in r.stderr


def test_samples_built_around_an_input_stay_where_the_model_is_defined(tmp_path):
    model = _sqrt_model(tmp_path / "m", [0.05, 0.01, 0.9])
    s = samples_mod.prepare(np.array([[0.05, 0.01, 0.9]]), model)
    assert all(np.isfinite(o).all() for x in s.all for o in model.run(x))
    assert s.all.min() >= 0 and "left out where the float model gives NaN" not in (s.built or "")


def _scatter_model(path):
    """A raw ScatterND into a computed tensor: ezkl 23.0.5 panics on it in gen_settings."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    idx = numpy_helper.from_array(np.array([[0, 1], [0, 3]], np.int64), "idx")
    upd = numpy_helper.from_array(np.array([-5.0, -5.0], np.float32), "upd")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="first_matmul"),
         helper.make_node("ScatterND", ["h", "idx", "upd"], ["s"], name="the_scatter"),
         helper.make_node("Relu", ["s"], ["y"], name="last_relu")], "scatter",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, idx, upd])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return load_onnx(path)


def test_the_node_ezkl_panics_on_is_found_and_named(tmp_path):
    model = _scatter_model(tmp_path / "scatter.onnx")
    visibility = Visibility("public", "public", "fixed")
    culprit = locate.first_failing_node(model, visibility, tmp_path / "locate")
    assert culprit is not None and (culprit.node, culprit.op) == ("the_scatter", "ScatterND")
    err = locate.explain(EzklPanicError("ezkl failed inside gen_settings (a panic: index out of bounds)"),
                         model, visibility, tmp_path / "locate2")
    assert "ScatterND node 'the_scatter' (node 2 of scatter.onnx)" in str(err)


@pytest.mark.slow  # compiles
def test_a_scatter_with_constant_indices_is_rewritten_and_proven(ws, tmp_path):
    """The same ScatterND, compiled: rewritten as Where over a constant mask, then faithful."""
    model = _scatter_model(tmp_path / "scatter.onnx")
    (tmp_path / "input.json").write_text(json.dumps({"input_data": [[0.3, -0.4, 0.8, 0.1]]}))
    c = proofmint.compile(model.path, calibration=tmp_path / "input.json", workspace=ws)
    assert [r["op"] for r in c.package.calibration_report.rewrites] == ["ScatterND"]
    assert c.package.quantization["relative_max_error"] <= 0.01

