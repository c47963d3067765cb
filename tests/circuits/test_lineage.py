"""A model whose input is another model's output (--input-from): read at the parent's output
scale, so the child's proven input is, field element for field element, the parent's proven
output — the ground proof-backed lineage stands on."""

from __future__ import annotations

import json

import pytest

import proofmint
from proofmint.errors import UsageError
from proofmint.prover import load_bundle


@pytest.mark.slow  # trains and compiles the upsampler
def test_a_childs_proven_input_is_its_parents_proven_output(zoo, circuits, proofs, ws, tmp_path):
    gen = circuits["generator"]
    up = proofmint.models_export("upsampler", out=tmp_path / "up")
    child = proofmint.compile(up.onnx, input_from=gen.circuit_id, workspace=ws)
    assert child.package.input_from == gen.circuit_id
    assert child.package.input_scale == gen.package.output_scales[0]
    assert child.package.quantization["relative_max_error"] <= 0.01
    parent = load_bundle(proofs["generator"])
    image = tmp_path / "image.json"
    image.write_text(json.dumps({"input_data": [parent.outputs[0]]}))  # the parent's decoded output
    bundle = load_bundle(proofmint.prove(child.circuit_id, input=image, out=tmp_path / "c.json",
                                         workspace=ws).bundles[0])
    assert proofmint.verify(tmp_path / "c.json", workspace=ws).valid
    p_out = parent.instances[gen.package.layout.output_start:]
    c_in = bundle.instances[child.package.layout.input_start:child.package.layout.input_start + len(p_out)]
    assert c_in == p_out  # the same field elements, not merely close values


@pytest.mark.slow
def test_an_input_from_a_circuit_whose_output_does_not_fit_is_refused(zoo, circuits, ws):
    with pytest.raises(UsageError, match=r"outputs 3 values .* takes 64"):
        proofmint.compile(zoo["lenet"].onnx, input_from=circuits["mlp"].circuit_id, workspace=ws)
