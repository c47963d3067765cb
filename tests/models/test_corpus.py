"""The corpus: every common torch layer and block as other people's exporters write it (torch's
TorchScript exporter at opsets 7, 9, 13, 18, with IR 3 and current IR; torch's default dynamo
exporter at opset 20 with external data), each handed over as a folder with one input.json.

Two tiers: every file of the corpus loads, is rewritten where needed and computes what the
original computes in float (no ezkl: fast); and every layer, in a flavour that rotates through
all of them, compiles from its folder, proves, verifies, and is within 1 % of the float
outputs' span on the given input and on held-out samples (slow). ``proofmint bench --corpus``
runs every file through the whole path, beside bare ezkl and JSTprove."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import proofmint
from proofmint.circuits import rewrite, samples as samples_mod
from proofmint.errors import UsageError
from proofmint.models import corpus, load_onnx
from proofmint.prover import load_bundle

# torch's own refusals: ops it has no symbolic for at that opset. A file that can't be written
# can't be brought; the test fails if this list changes either way.
TORCH_REFUSES = {
    ("attention", f) for f in ("o7-ir3", "o7", "o9-ir3", "o9", "o13-ir3", "o13")
} | {(layer, f) for layer in ("slice", "gpt_causal") for f in ("o7-ir3", "o7", "o9-ir3", "o9")} | {
    ("gpt_masked_fill", "o7-ir3"), ("gpt_masked_fill", "o7")}


def test_every_corpus_file_loads_rewrites_and_computes_the_same_in_float(tmp_path):
    refused, checked, ir3 = set(), 0, 0
    for layer in corpus.names():
        for flavour in corpus.FLAVOURS:
            folder = tmp_path / f"{layer}-{flavour}"
            try:
                e = corpus.export(layer, flavour, folder)
            except UsageError:
                refused.add((layer, flavour))
                continue
            model = load_onnx(folder)
            given = samples_mod.load_samples(folder / "input.json", model)
            s = samples_mod.prepare(given, model)
            graph, applied = rewrite.rewrite(model, folder / "rewritten.onnx", s.calibration)
            if graph is not model:  # every graph written back is a valid model at the IR its opset needs
                proto = onnx.load(graph.path)
                onnx.checker.check_model(proto)
                assert proto.ir_version >= 4 and not ({i.name for i in proto.graph.initializer}
                                                      & {i.name for i in proto.graph.input})
            ir3 += e.ir_version == 3
            checked += 1
    assert refused == TORCH_REFUSES
    assert checked == len(corpus.names()) * len(corpus.FLAVOURS) - len(TORCH_REFUSES) and ir3 >= 100


# The proven tier: every flavour, every kind of layer the issue names, within make test's budget
# (a few seconds each; the GPT about a minute); ``proofmint bench --corpus`` proves every file.
CASES = [("conv2d_dilated", "o7-ir3"), ("batchnorm2d", "o7"), ("conv1d_grouped", "o9-ir3"),
         ("maxpool2d_padded", "o9"), ("constant_pad", "o13-ir3"), ("embedding", "o13"),
         ("gelu", "o18-ir3"), ("logsoftmax", "o18"), ("layernorm", "default"), ("conv3d", "default"),
         ("gelu", "o7-ir3"), ("softmax_axis1", "o9"), ("reshape", "o7-ir3"), ("gather", "default"),
         ("attention", "o18"), ("gpt_causal", "o13")]


@pytest.mark.slow  # compiles and proves a model of its own
@pytest.mark.parametrize("layer,flavour", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_a_corpus_file_compiles_from_its_folder_proves_and_is_faithful(layer, flavour, ws, tmp_path):
    folder = tmp_path / layer
    corpus.export(layer, flavour, folder)
    c = proofmint.compile(folder, workspace=ws)
    q = c.package.quantization
    assert q["relative_max_error"] <= 0.01 and q["samples"] >= 16, q
    bundle = proofmint.prove(c.circuit_id, input=folder / "input.json", out=tmp_path / "p.json",
                             workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    b = load_bundle(bundle)  # the given input, the first sample a user cares about
    assert b.max_abs_diff <= 0.01 * q["output_range"] + 1e-9, (b.max_abs_diff, q)


def test_samples_built_around_one_input_span_its_domain_and_judge_it_first(tmp_path):
    model = _model_gemm_tanh_gemm(tmp_path)
    given = np.array([[0.3, -0.7, 0.1, 0.9, -0.2, 0.5]])
    s = samples_mod.prepare(given, model)
    assert np.array_equal(s.heldout[0], given[0])  # judged first
    assert np.array_equal(s.calibration[0], given[0])  # and calibrated on
    assert s.accepted[0] == pytest.approx(-1, abs=0.05) and s.accepted[1] == pytest.approx(1, abs=0.05)
    assert s.all.min() >= -1 and s.all.max() <= 1
    assert "[-1, 1]" in s.report()["domain"]


def test_an_embedding_input_takes_every_row_of_its_table(tmp_path):
    corpus.export("embedding", "o18", tmp_path / "e")
    model = load_onnx(tmp_path / "e")
    d = samples_mod.domain(np.array([[3.0, 3.0, 4.0, 5.0]]), model)
    assert d.low.min() == 0 and d.high.max() == 15 and d.integral.all()
    assert "table of 16 rows" in d.why


def _model_gemm_tanh_gemm(folder):
    """A hand-written graph, as a user would write one with onnx.helper: 6 inputs in [-1, 1]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * k).astype(np.float32), n)
             for n, s, k in (("w1", (6, 8), 1.2), ("b1", (8,), 0.3), ("w2", (8, 3), 1.0), ("b2", (3,), 0.1))]
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
         helper.make_node("Gemm", ["t", "w2", "b2"], ["y"])], "gtg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, folder / "model.onnx")
    (folder / "input.json").write_text(json.dumps({"input_data": [rng.uniform(-1, 1, 6).round(4).tolist()]}))
    return load_onnx(folder)


@pytest.mark.slow  # compiles and proves
def test_a_circuit_from_one_input_proves_a_stream_drawn_from_its_range(ws, tmp_path):
    """The issue's case: compiled with defaults from a folder holding one input.json, then a
    stream of inputs drawn uniformly from the range that input came from: every one proves
    (it used to fail them all: "drives a non-linear layer to 2379, outside [-1560, 1468]")."""
    model = _model_gemm_tanh_gemm(tmp_path / "gtg")
    c = proofmint.compile(model.path.parent, batch=4, workspace=ws)
    assert c.package.input_range == [-1.0, pytest.approx(1.0, abs=0.05)]
    stream = tmp_path / "stream.jsonl"
    draws = np.random.default_rng(11).uniform(-1, 1, (12, 6))
    stream.write_text("".join(json.dumps({"input_data": [x.tolist()]}) + "\n" for x in draws))
    r = proofmint.prove(c.circuit_id, input=stream, out=tmp_path / "p.json", workspace=ws)
    assert not r.failures and len(r.bundles) == 3
    for b in r.bundles:
        assert proofmint.verify(b, workspace=ws).valid
        assert load_bundle(b).max_abs_diff <= 0.01 * c.package.quantization["output_range"] + 1e-9
