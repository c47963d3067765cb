"""A layer too wide for any segment, split into channel groups summed through the next layer:
the same function, a cut between groups, and a proof that verifies and re-derives."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import proofmint
from proofmint.circuits import rewrite, segments, split
from proofmint.errors import InvalidModelError
from proofmint.models import load_onnx
from proofmint.prover.segmented import load_any
from proofmint.store import Workspace, sha256_file


class Wide(nn.Module):
    """A generator's shape in small: a transposed convolution to 32 channels, BatchNorm and
    ReLU, then a convolution back to one. Its 32-channel tensor (2,048 values) is the only
    thing that crosses between the two layers, and hashing it costs more rows than the layers."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(1, 2, 3, padding=1)
        self.a = nn.ConvTranspose2d(2, 32, 4, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.b = nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.b(torch.relu(self.bn(self.a(torch.relu(self.pre(x)))))))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    torch.manual_seed(0)
    m = Wide().eval()
    with torch.no_grad():  # a BatchNorm that does something
        m.bn.running_mean.uniform_(-0.2, 0.2)
        m.bn.running_var.uniform_(0.5, 2.0)
    torch.onnx.export(m, (torch.rand(1, 1, 4, 4),), str(root / "model.onnx"), opset_version=18, dynamo=False)
    (root / "input.json").write_text(json.dumps({"input_data": [torch.rand(16).tolist()]}))
    return root


def _samples(n: int = 8) -> np.ndarray:
    return np.random.default_rng(1).random((n, 16)).astype(np.float32)


def test_the_costliest_layer_whose_channels_are_summed_by_the_next_is_found(wide):
    found = split.pairs(load_onnx(wide / "model.onnx"))
    # the transposed conv (through BatchNorm and ReLU) into the conv; the first conv into the
    # transposed one (through ReLU) too, but it makes fewer products
    assert [(p.node, p.then, p.channels) for p in found] == [
        ("/a/ConvTranspose", "/b/Conv", 32), ("/pre/Conv", "/a/ConvTranspose", 2)]
    assert found[0].products > found[1].products


def test_a_layer_split_into_channel_groups_computes_the_same_with_a_cut_after_each_group(wide, tmp_path):
    model = load_onnx(wide / "model.onnx")
    pair = split.pairs(model)[0]
    graph, applied = rewrite.grouped(model, tmp_path / "grouped.onnx", _samples(), pair, 4)
    for x in _samples(4):
        assert np.allclose(model.run(x)[0], graph.run(x)[0], atol=1e-5)
    assert applied[0].groups == 4 and applied[0].to_dict()["groups"] == 4
    # each group's transposed conv is rewritten by output phase, like the layer was
    assert {a.node for a in applied[1:] if a.op == "ConvTranspose"} == {f"/a/ConvTranspose/group{g}" for g in range(4)}
    nodes, cuts = segments.boundaries(graph)
    x = nodes[0].input[0]  # what the first conv reads: the model's input
    after = {g: [c for c in cuts if pair.sum_after(g, 4) in c.tensors] for g in (1, 2)}
    for g, found in after.items():  # the layer's input and the running sum: 32 + 64 values, nothing wider
        assert found and found[0].values == 32 + 64 and len(found[0].tensors) == 2, (g, found)
        assert x not in found[0].tensors
    # verify-asset rebuilds the same graph from the report alone (no samples)
    again = rewrite.replay(model, tmp_path / "again.onnx", [a.to_dict() for a in applied])
    assert sha256_file(again.path) == sha256_file(graph.path)


def test_a_budget_no_grouping_can_meet_is_refused_in_one_line(wide, tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    with pytest.raises(InvalidModelError, match=r"model.onnx can't be cut into segments whose keys each fit 50 MiB, "
                                                r"not even with '/a/ConvTranspose' split into up to 32 channel "
                                                r"groups — raise --max-key") as err:
        proofmint.compile(wide / "model.onnx", max_key="50M", workspace=ws)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # compiles and proves five small segments
def test_a_model_no_cut_fits_is_proven_with_its_widest_layer_in_channel_groups(wide, tmp_path):
    """Under 800 MiB no plan of the graph as exported fits: the whole model at its chosen
    scale needs a larger key, so do the two layers together, and any cut between them hashes
    2,048 values. Four channel groups do (their keys 628-708 MiB, estimated 668-748); the proof
    verifies, and the segments re-derive from the file."""
    from proofmint.circuits import calibrate, segmented
    from proofmint.verifier.content.segmented import cut_from

    ws = Workspace.resolve(tmp_path / "ws")
    c = proofmint.compile(wide / "model.onnx", max_key="800M", workspace=ws)
    pkg = c.package
    assert isinstance(pkg, segmented.SegmentedPackage)
    # its size check (half the rows at ezkl's defaults) fits the budget: compile took it as one
    # circuit, whose chosen scale's key did not fit, and went on as segments
    graph, _ = rewrite.rewrite(load_onnx(wide / "model.onnx"), tmp_path / "rw.onnx", _samples())
    assert calibrate.size(graph, pkg.visibility, tmp_path, 1)[1] <= 800 * 2**20
    splits = [r for r in pkg.calibration_report.rewrites if "groups" in r]
    assert [(r["node"], r["groups"]) for r in splits] == [("/a/ConvTranspose", 4)]
    assert "split into 4 channel groups" in pkg.plan["why"]
    parts = pkg.packages(ws)
    assert len(parts) >= 4 and all(s["key_bytes"] <= 800 * 2**20 for s in pkg.plan["segments"])
    assert all(p.pk_bytes <= 800 * 2**20 for p in parts)
    assert pkg.quantization["relative_max_error"] <= 0.01
    bundle = proofmint.prove(pkg.circuit_id, input=wide / "input.json", out=tmp_path / "p.json",
                             workspace=ws).bundles[0]
    v = proofmint.verify(bundle, workspace=ws)
    assert v.valid, v.reason
    # the float model's outputs, within the contract (max_abs_diff: against onnxruntime's)
    assert load_any(bundle).max_abs_diff <= 0.01 * pkg.quantization["output_range"]
    # what verify-asset checks: the published file, split and cut as the report says, gives
    # each segment's model
    assert cut_from(pkg.path / "model.onnx", pkg) == [p.model_id for p in parts]
    assert onnx.load(str(pkg.path / "model.onnx")).graph.node[2].op_type == "ConvTranspose"  # the user's file, kept


class Swish(nn.Module):
    """Layers joined by activations other exporters write as graphs, not ops: SiLU (x times
    sigmoid(x)) and lenet_5's x * x + x, each reading the convolution's output twice."""

    def __init__(self, leak: bool = False):
        super().__init__()
        self.leak = leak
        self.pre = nn.Conv2d(1, 2, 3, padding=1)
        self.a = nn.Conv2d(2, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x):
        h = self.a(torch.relu(self.pre(x)))
        h = h * torch.sigmoid(h)
        h = h * h + h
        return (self.b(h), h) if self.leak else self.b(h)


def _export(m: nn.Module, path):
    torch.manual_seed(0)
    torch.onnx.export(m.eval(), (torch.rand(1, 1, 4, 4),), str(path), opset_version=18, dynamo=False)
    return load_onnx(path)


def test_layers_joined_by_an_activation_graph_are_split_with_each_group_through_it(tmp_path):
    torch.manual_seed(0)
    model = _export(Swish(), tmp_path / "model.onnx")
    ops = [n.op_type for n in onnx.load(str(model.path)).graph.node]
    assert ops.count("Mul") == 2 and "Sigmoid" in ops and "Add" in ops  # not one fused op
    pair = split.pairs(model)[0]
    assert (pair.node, pair.then, pair.channels) == ("/a/Conv", "/b/Conv", 16)
    graph, applied = rewrite.grouped(model, tmp_path / "grouped.onnx", _samples(), pair, 4)
    for x in _samples(4):
        assert np.allclose(model.run(x)[0], graph.run(x)[0], atol=1e-5)
    nodes = onnx.load(str(graph.path)).graph.node
    assert sum(n.op_type == "Sigmoid" for n in nodes) == 4 and sum(n.op_type == "Conv" for n in nodes) == 9
    _, cuts = segments.boundaries(graph)
    for g in (1, 2):  # what /pre/Conv's ReLU makes (32 values) and the running sum (16): nothing wider
        found = [c for c in cuts if pair.sum_after(g, 4) in c.tensors]
        assert found and found[0].values == 32 + 16 and len(found[0].tensors) == 2, (g, found)
    again = rewrite.replay(model, tmp_path / "again.onnx", [a.to_dict() for a in applied])
    assert sha256_file(again.path) == sha256_file(graph.path)


def test_an_activation_whose_values_leave_the_layers_is_not_split(tmp_path):
    """The activation's output is also a model output: a group carries only its own channels
    of it, so the layers are not split."""
    model = _export(Swish(leak=True), tmp_path / "model.onnx")
    assert [(p.node, p.then) for p in split.pairs(model)] == [("/pre/Conv", "/a/Conv")]


def test_weights_written_as_constant_nodes_or_through_identity_are_split_the_same(wide, tmp_path):
    """Exporters other than torch's write weights as Constant nodes, and a weight two layers
    share as an Identity of it: the same layers are found and the split computes the same."""
    proto = onnx.load(str(wide / "model.onnx"))
    consts = [onnx.helper.make_node("Constant", [], [t.name], value=t) for t in proto.graph.initializer]
    b = next(n for n in proto.graph.node if n.name == "/b/Conv")
    shared = onnx.helper.make_node("Identity", [b.input[1]], [b.input[1] + "/shared"])
    b.input[1] = shared.output[0]
    nodes = consts + [shared] + list(proto.graph.node)
    del proto.graph.initializer[:]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    onnx.save(proto, str(tmp_path / "model.onnx"))
    model, plain = load_onnx(tmp_path / "model.onnx"), load_onnx(wide / "model.onnx")
    assert not onnx.load(str(model.path)).graph.initializer
    assert split.pairs(model) == split.pairs(plain)
    grouped = split.apply(model, tmp_path / "grouped.onnx", [("/a/ConvTranspose", 4)])
    for x in _samples(4):
        assert np.allclose(plain.run(x)[0], grouped.run(x)[0], atol=1e-5)


def test_a_layer_without_a_name_of_its_own_is_named_by_the_tensor_it_makes(wide, tmp_path):
    """A report names the layer it split. Exporters that name no nodes (caffe2's, the ONNX zoo's
    classic CNNs) or name two alike: the layer is named by its op and output, unique in any
    graph, and a replay of the report rebuilds the same graph; a node whose own name is that
    label makes it ambiguous, and the layer is not offered."""
    proto = onnx.load(str(wide / "model.onnx"))
    for n in proto.graph.node:
        if n.op_type in ("Conv", "ConvTranspose"):
            n.name = "" if n.op_type == "ConvTranspose" else "same"
    onnx.save(proto, str(tmp_path / "model.onnx"))
    model = load_onnx(tmp_path / "model.onnx")
    found = split.pairs(model)
    a = next(n for n in proto.graph.node if n.op_type == "ConvTranspose")
    assert [(p.node, p.then) for p in found][0] == (f"ConvTranspose -> {a.output[0]}",
                                                   f"Conv -> {proto.graph.node[-2].output[0]}")
    graph, applied = rewrite.grouped(model, tmp_path / "grouped.onnx", _samples(), found[0], 4)
    for x in _samples(4):
        assert np.allclose(model.run(x)[0], graph.run(x)[0], atol=1e-5)
    again = rewrite.replay(model, tmp_path / "again.onnx", [r.to_dict() for r in applied])
    assert sha256_file(again.path) == sha256_file(graph.path)
    names = [n.name for n in onnx.load(str(graph.path)).graph.node]
    assert len(names) == len(set(names))  # each group's layers named apart

    next(n for n in proto.graph.node if n.op_type == "Relu").name = found[0].node  # a node named like the label
    onnx.save(proto, str(tmp_path / "clash.onnx"))
    assert [p.op for p in split.pairs(load_onnx(tmp_path / "clash.onnx"))] == ["Conv"]


@pytest.mark.parametrize("report,says", [
    ([{"op": "ConvTranspose", "node": "/a/ConvTranspose", "groups": 4}] * 2, "no layer '/a/ConvTranspose'"),
    ([{"op": "ConvTranspose", "groups": 4}], "no layer 'None'"),
    ([{"op": "ConvTranspose", "node": "/a/ConvTranspose", "groups": 1}], "can't be split into 1 groups of its 32"),
    ([{"op": "ConvTranspose", "node": "/a/ConvTranspose", "groups": 33}], "can't be split into 33 groups of its 32"),
])
def test_a_report_whose_split_this_file_cant_make_is_refused_in_one_line(wide, tmp_path, report, says):
    """verify-asset rebuilds the graph from a published report: a split named twice, a layer
    not named, or more groups than channels is refused, not a traceback."""
    with pytest.raises(InvalidModelError, match=re.escape(says)) as err:
        rewrite.replay(load_onnx(wide / "model.onnx"), tmp_path / "g.onnx", report)
    assert "\n" not in str(err.value)
