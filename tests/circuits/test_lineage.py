"""A model whose input is another model's output (--input-from): read at the parent's output
scale, so the child's proven input is, field element for field element, the parent's proven
output — the ground proof-backed lineage stands on."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
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
    with pytest.raises(UsageError, match=r"is 3 values; .* takes 64"):
        proofmint.compile(zoo["lenet"].onnx, input_from=circuits["mlp"].circuit_id, workspace=ws)


def half_image_model(path: Path) -> Path:
    """A model that reads half of the zoo generator's 8x8 image (4 rows of 8): a child of a
    slice of its parent's output."""
    import torch

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(2, 1, 3, padding=1), torch.nn.Sigmoid())
    torch.onnx.export(net, (torch.zeros(1, 1, 4, 8),), str(path), opset_version=18, dynamo=False)
    return path


@pytest.mark.slow  # compiles a small model twice
def test_one_model_reading_two_slices_is_two_circuits(zoo, circuits, ws, tmp_path):
    """Where the input lies among the parent's outputs is part of the circuit's id: the same
    model reading the top and the bottom half of the generator's image is two circuits, each
    recording its own start (one would otherwise be registered with the other's)."""
    gen = circuits["generator"]
    name = onnx.load(zoo["generator"].onnx).graph.output[0].name
    half = half_image_model(tmp_path / "half.onnx")
    top = proofmint.compile(half, input_from=f"{gen.circuit_id}[0:32]", workspace=ws)
    bottom = proofmint.compile(half, input_from=f"{gen.circuit_id[:12]}:{name}[32:64]", workspace=ws)
    assert (top.package.input_from_start, bottom.package.input_from_start) == (0, 32)
    assert top.package.input_from == bottom.package.input_from == gen.circuit_id
    assert top.circuit_id != bottom.circuit_id
    assert top.package.input_scale == gen.package.output_scales[0]


@pytest.mark.slow
@pytest.mark.parametrize("suffix,error", [
    (":nope", r"has no output 'nope'; its outputs: "),
    ("[60:70]", r"\[60:70\] is not a range within output .* 64 values"),
    ("[0:30]", r"is 30 values; half.onnx takes 32"),
    ("!", r"write CIRCUIT, CIRCUIT:OUTPUT"),
])
def test_a_slice_that_is_not_one_is_refused_before_any_work(suffix, error, circuits, ws, tmp_path):
    half = half_image_model(tmp_path / "half.onnx")
    with pytest.raises(UsageError, match=error):
        proofmint.compile(half, input_from=circuits["generator"].circuit_id + suffix, workspace=ws)


@pytest.mark.slow
def test_a_range_of_a_hashed_output_is_refused(zoo, circuits, ws):
    """A hashed output is one Poseidon hash per tensor: a range of it can't be checked."""
    hashed = proofmint.compile(zoo["mlp"].onnx, output_visibility="hashed", workspace=ws)
    with pytest.raises(UsageError, match="outputs are hashed: .* a range of one can't be checked"):
        proofmint.compile(zoo["lenet"].onnx, input_from=f"{hashed.circuit_id}[0:2]", input_visibility="hashed",
                          workspace=ws)
