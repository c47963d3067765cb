"""Layers ezkl refuses or mis-circuits, as a user exports them from PyTorch: rewritten, checked
in float, compiled with defaults, proven, verified, and within 1 % of the float outputs' span."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import proofmint
from proofmint.benchmarks.rewrites import pairs, sandwich
from proofmint.circuits import rewrite
from proofmint.errors import InvalidModelError
from proofmint.models import load_onnx
from proofmint.prover import load_bundle


LAYERS = {name: rewritten for name, (rewritten, _) in pairs().items()}  # as bench --rewrites measures them
Sandwich = sandwich  # the layer between two convolutions
EXPECTED_OP = {"dilated conv": "Conv", "reflection pad": "Pad", "replication pad": "Pad",
               "constant pad 2.0": "Pad", "maxpool with padding": "MaxPool", "prelu per channel": "PRelu",
               "pow": "Pow", "tile": "Tile", "transposed conv stride 2": "ConvTranspose"}


def _export(module: nn.Module, folder, opset: int | None, shape=(1, 2, 6, 6), seed: int = 0):
    torch.manual_seed(seed)
    module = module.eval()
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.randn(*shape)
    kwargs = {} if opset is None else {"opset_version": opset}
    torch.onnx.export(module, (x,), str(folder / "model.onnx"), dynamo=False, **kwargs)
    (folder / "input.json").write_text(json.dumps({"input_data": [x.numpy().ravel().tolist()]}))
    return folder / "model.onnx", folder / "input.json"


@pytest.mark.slow  # compiles and proves a model of its own
@pytest.mark.parametrize("opset", [None, 18], ids=["torch default opset", "opset 18"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_is_rewritten_proven_and_faithful(layer, opset, ws, tmp_path):
    torch.manual_seed(1)
    onnx_path, inp = _export(Sandwich(LAYERS[layer]()), tmp_path / "m", opset)
    c = proofmint.compile(onnx_path, workspace=ws)
    pkg = c.package
    rewrites = pkg.calibration_report.rewrites
    ops = [r["op"] for r in rewrites]
    assert EXPECTED_OP[layer] in ops
    # the rows the rewritten subgraph costs, measured at this circuit's settings
    assert all(r["rows"] > 0 for r in rewrites if r["op"] == EXPECTED_OP[layer]), rewrites
    assert all(r["rows"] == 0 for r in rewrites if r["op"] == "opset"), rewrites
    if opset is None:  # torch 2.13 writes opset 20: converted to 18 first
        assert load_onnx(onnx_path).opset > 18 and ops[0] == "opset"
    q = pkg.quantization
    assert q["relative_max_error"] <= 0.01 and q["samples"] >= 16, q
    assert pkg.model_id == load_onnx(onnx_path).model_id  # the registry binds what the user published
    assert (pkg.path / "circuit.onnx").is_file() and "circuit.onnx" in pkg.digests
    bundle = proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    b = load_bundle(bundle)
    assert b.max_abs_diff <= 0.01 * q["output_range"] + 1e-9


@pytest.mark.slow  # compiles and proves a model of its own
def test_maxpool_padding_is_faithful_on_negative_inputs(ws, tmp_path):
    """ezkl alone pads MaxPool with zeros: on all-negative inputs every border output is 0.0,
    a valid proof of a wrong answer. After the rewrite the proof carries the model's maxima."""
    onnx_path, _ = _export(nn.MaxPool2d(3, stride=1, padding=1), tmp_path / "m", 18, shape=(1, 1, 5, 5))
    x = -np.random.default_rng(2).uniform(0.5, 1.5, 25)
    inp = tmp_path / "neg.json"
    inp.write_text(json.dumps({"input_data": [x.tolist()]}))
    c = proofmint.compile(onnx_path, calibration=inp, workspace=ws)
    b = load_bundle(proofmint.prove(c.circuit_id, input=inp, out=tmp_path / "p.json", workspace=ws).bundles[0])
    outputs, reference = np.array(b.outputs[0]), np.array(b.reference_outputs[0])
    assert reference.max() < 0 and outputs.max() < 0  # no zero from padding reached an output
    assert np.abs(outputs - reference).max() <= 0.01 * (reference.max() - reference.min()) + 1e-9


def test_a_rewrite_that_changes_the_model_is_refused(tmp_path, monkeypatch):
    onnx_path, _ = _export(Sandwich(LAYERS["tile"]()), tmp_path / "m", 18)
    model = load_onnx(onnx_path)

    def wrong(ed, node):  # "tiles" with a zero copy: must never reach ezkl
        x = node.inputs[0]
        y = ed.node("Concat", [x, ed.node("Sub", [x, x], dtype=x.dtype)], {"axis": 2}, dtype=x.dtype)
        ed.replace(node, y)
        ed.done(node, "a wrong tiling")

    monkeypatch.setitem(rewrite.REWRITES, "Tile", wrong)
    with pytest.raises(InvalidModelError, match="changed the model's float outputs"):
        rewrite.rewrite(model, tmp_path / "r.onnx", np.random.default_rng(0).standard_normal((4, 72)))


def test_pow_with_a_computed_exponent_is_refused_in_one_line(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["e"]), helper.make_node("Pow", ["x", "e"], ["y"], name="pow_xx")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    import onnx

    path = tmp_path / "pow.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(InvalidModelError, match="Pow node 'pow_xx' raises to a computed exponent"):
        rewrite.rewrite(load_onnx(path), tmp_path / "r.onnx", np.ones((2, 4)))


def test_nonmaxsuppression_is_refused_naming_the_node_and_an_alternative(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms")
    graph = helper.make_graph(node and [node], "g",
                              [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])],
                              [helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])],
                              [onnx.numpy_helper.from_array(np.ones((1, 1, 4), np.float32), "scores")])
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(InvalidModelError, match=r"NonMaxSuppression \(node 'nms'\).*run NMS after the model"):
        load_onnx(path)


@pytest.mark.slow  # compiles a model of its own and re-derives its key
def test_a_mask_fill_chosen_from_the_samples_is_rebuilt_without_them(ws, tmp_path):
    """nanoGPT's masked_fill(-inf) is rewritten with a fill chosen from the calibration samples
    (the largest |score| + 16). The report records it, so what verify-asset runs without
    any samples (the registered model -> the circuit's verifying key) builds the same graph;
    without the record the mask would stay -inf and the key would differ."""
    from proofmint.models import corpus
    from proofmint.verifier.chain.deploy import vk_hash
    from proofmint.verifier.evm import derived_vk

    onnx_path = corpus.export("gpt_masked_fill", "o18", tmp_path / "m").folder / "model.onnx"
    pkg = proofmint.compile(onnx_path, workspace=ws).package
    chosen = rewrite.chosen_constants(pkg.calibration_report.rewrites)
    assert len(chosen) == 1 and all(v < -16 for v in chosen.values()), pkg.calibration_report.rewrites
    assert derived_vk(pkg, onnx_path) == vk_hash(pkg).hex()
    circuit = (pkg.path / "circuit.onnx").read_bytes()
    replayed, _ = rewrite.rewrite(load_onnx(onnx_path), tmp_path / "replayed.onnx", np.empty((0, 0)), chosen)
    unrecorded, _ = rewrite.rewrite(load_onnx(onnx_path), tmp_path / "bare.onnx", np.empty((0, 0)))
    assert replayed.data == circuit != unrecorded.data


class _Scores(nn.Module):
    """Attention's scores as nanoGPT writes them, (q @ k^T) * 1/sqrt(d), then a linear layer
    times a constant: the one multiplies T x T products, the other could fold into weights."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(8, 3, bias=False)

    def forward(self, x):
        att = torch.softmax((self.q(x) @ self.k(x).transpose(-2, -1)) * 0.5, -1)
        return (att @ self.out.weight[:, :8].T) * 0.25


def test_a_constant_multiple_of_a_matmul_scales_the_smaller_operand(tmp_path):
    """The scores' 1/sqrt(d) moves onto q (T x d values, not T x T), the head's constant folds
    into its weights (no op left): fewer rows at ezkl's defaults, the same float outputs (the
    rewrite's own check)."""
    from proofmint import ezkl_layer

    onnx_path, _ = _export(_Scores(), tmp_path / "m", 18, shape=(1, 8, 4))
    model = load_onnx(onnx_path)
    xs = np.random.default_rng(0).normal(size=(8, 32))
    graph, applied = rewrite.rewrite(model, tmp_path / "rewritten.onnx", xs)
    into = sorted(a.into for a in applied if a.op == "Mul")
    assert len(into) == 2 and "folded into the MatMul's weights" in into[0] and "onto 32 values instead of 64" in into[1]
    assert [n.op_type for n in __import__("onnx").load(tmp_path / "rewritten.onnx").graph.node].count("Mul") == 1
    rows = []
    for path in (onnx_path, graph.path):
        ezkl_layer.gen_settings(path, tmp_path / "s.json", ezkl_layer.run_args(
            input_visibility="public", output_visibility="public", param_visibility="fixed"))
        rows.append(json.loads((tmp_path / "s.json").read_text())["num_rows"])
    assert rows[1] < rows[0], rows


@pytest.mark.parametrize("cin,cout,k,s,p,extra,h,fewer", [
    (16, 8, 4, 2, 1, 0, 7, True),  # the zoo generator28's first layer (DCGAN)
    (2, 3, 5, 2, 2, 1, 4, True),  # EZKL mnist_gan's shape: 5x5, output_padding 1
    (2, 2, 4, 2, 0, 0, 3, True),
    (1, 2, 6, 3, 0, 0, 4, None),  # stride 3: bare ezkl can't read it at all
])
def test_a_strided_conv_transpose_is_rewritten_as_one_conv_per_output_phase(cin, cout, k, s, p, extra, h, fewer,
                                                                            tmp_path):
    """ezkl proves a stride-s transposed convolution over its input with zeros inserted, every
    output summing its whole kernel: s^2 Convs over the input itself give the same sums with
    s^2 fewer products. Same float outputs as torch's layer, fewer rows at ezkl's defaults;
    where bare ezkl refuses the layer ("Cannot reshape tensor"), the rewritten one reads."""
    from proofmint import ezkl_layer
    from proofmint.errors import ProofmintError

    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=extra).eval()
    onnx_path, _ = _export(layer, tmp_path / "m", 18, shape=(1, cin, h, h))
    xs = np.random.default_rng(0).normal(size=(4, cin * h * h))
    graph, applied = rewrite.rewrite(load_onnx(onnx_path), tmp_path / "rewritten.onnx", xs)
    assert [a.into for a in applied] == [f"{s * s} Convs, one per output phase, interleaved"]
    for x in xs:
        want = layer(torch.tensor(x, dtype=torch.float32).reshape(1, cin, h, h)).detach().numpy()
        assert np.allclose(graph.run(x)[0], want, atol=1e-5)
    rows = []
    for path in (onnx_path, graph.path):
        try:
            ezkl_layer.gen_settings(path, tmp_path / "s.json", ezkl_layer.run_args(
                input_visibility="public", output_visibility="public", param_visibility="fixed"))
            rows.append(json.loads((tmp_path / "s.json").read_text())["num_rows"])
        except ProofmintError as exc:
            rows.append(str(exc))
    if fewer:
        assert rows[1] < rows[0], rows
    else:
        assert "Cannot reshape tensor" in rows[0] and isinstance(rows[1], int), rows


def test_a_conv_transpose_whose_phases_differ_in_size_is_left_to_ezkl(tmp_path):
    """A 5 -> 11 output (stride 2, kernel 3, no output padding): the phases are 6 and 5 wide,
    which Concat can't interleave: the layer is left as exported."""
    torch.manual_seed(0)
    onnx_path, _ = _export(nn.ConvTranspose2d(1, 1, 3, stride=2), tmp_path / "m", 18, shape=(1, 1, 5, 5))
    graph, applied = rewrite.rewrite(load_onnx(onnx_path), tmp_path / "rewritten.onnx",
                                     np.random.default_rng(0).normal(size=(2, 25)))
    assert not [a for a in applied if a.op == "ConvTranspose"]


def test_a_package_rebuilds_only_the_rewrites_its_compile_applied(tmp_path):
    """verify-asset rebuilds a published circuit's graph from the registered model: with the
    rewrites its report lists, it is compile's graph byte for byte; a package compiled before a
    rewrite existed (its report lists none) rebuilds the graph it was compiled from, not today's."""
    onnx_path, _ = _export(nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1), tmp_path / "m", 18, shape=(1, 2, 4, 4))
    model = load_onnx(onnx_path)
    graph, applied = rewrite.rewrite(model, tmp_path / "compiled.onnx", np.random.default_rng(0).normal(size=(2, 32)))
    report = [a.to_dict() for a in applied]
    assert [r["op"] for r in report] == ["ConvTranspose"]
    replayed, _ = rewrite.rewrite(model, tmp_path / "replayed.onnx", np.empty((0, 0)), {}, rewrite.recorded(report))
    assert replayed.data == graph.data
    older, none = rewrite.rewrite(model, tmp_path / "older.onnx", np.empty((0, 0)), {}, rewrite.recorded([]))
    assert older is model and none == []
    assert rewrite.recorded(None) is None  # no report at all: every rewrite, as before reports existed


class _Masked(nn.Module):
    """Causal scores into a softmax, masked as nanoGPT masks them; ``after`` scales them past
    the mask (a scale there scales the gap between masked and kept entries too)."""

    def __init__(self, after: float | None):
        super().__init__()
        self.after = after
        self.register_buffer("tril", torch.tril(torch.ones(4, 4)))

    def forward(self, x):
        att = (x @ x.transpose(-2, -1)).masked_fill(self.tril == 0, float("-inf"))
        return torch.softmax(att if self.after is None else att * self.after, -1)


@pytest.mark.parametrize("after", [None, 0.125])
def test_a_causal_mask_is_filled_just_far_enough_below_the_scores(after, tmp_path):
    """Straight into the softmax (which subtracts the row max) the fill is -(max|score| + 16):
    every masked entry at least 16 below its row's kept diagonal. With a scale c between mask
    and softmax, -(max|score| + 16 / c): the same gap of 16 where the softmax reads it (the
    fill of -(2 max|score| + 16) this rewrite used to take there changed this model's outputs
    by 0.06, and compile refused it). The float outputs are unchanged (the rewrite's own check)."""
    onnx_path, _ = _export(_Masked(after), tmp_path / "m", 18, shape=(1, 4, 3))
    xs = np.random.default_rng(0).normal(size=(16, 12))
    _, applied = rewrite.rewrite(load_onnx(onnx_path), tmp_path / "rewritten.onnx", xs)
    (fill,) = [v for a in applied if a.op == "Where" for v in a.chosen.values()]
    scores = np.abs([x.reshape(4, 3) @ x.reshape(4, 3).T for x in xs[:rewrite.CHECK_SAMPLES]]).max()
    assert fill == pytest.approx(-(scores + rewrite.MASK_MARGIN / (after or 1)), rel=1e-5)
