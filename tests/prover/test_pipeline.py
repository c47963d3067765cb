"""compile -> prove -> verify on every zoo model, caching, tampering, and a model the zoo never saw."""

import json

import numpy as np
import pytest

import proofmint
from proofmint import ezkl_layer
from proofmint.prover import load_bundle
from proofmint.circuits.search import TIMING_NOISE
from proofmint.circuits.fidelity import acceptable

from ..conftest import ZOO_NAMES, run_cli
from ..verifier.tampering import tampered


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_proves_and_verifies(proofs, circuits, ws, name):
    result = proofmint.verify(proofs[name], workspace=ws)
    assert result.valid, result.reason
    assert result.srs_warning == "development SRS (not secure)"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_decoded_outputs_match_onnxruntime_within_reported_tolerance(proofs, circuits, name):
    b = load_bundle(proofs[name])
    q = circuits[name].package.quantization
    # the circuit's error on this input is of the size measured on the calibration set
    assert b.max_abs_diff <= 2 * q["max_abs_error"] + 1e-6
    if "argmax_agreement" in q:
        assert b.argmax_agrees
    else:
        assert b.max_abs_diff <= 0.02 * q["output_range"]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_balanced_keeps_the_float_models_outputs(circuits, name):
    """The default target's contract: within 1 % of the output span on held-out samples (and
    argmax kept), measured from real witnesses and recorded in the package."""
    pkg = circuits[name].package
    q, report = pkg.quantization, pkg.calibration_report
    assert q["relative_max_error"] <= 0.01 and q["samples"] >= 16
    assert q.get("argmax_agreement_decisive", 1.0) >= 0.99
    assert report.chosen["quality"] == q and report.samples["heldout"] >= 16
    # fidelity first, then speed: nothing measured faithful was predicted cheaper, unless a
    # timed proof chose otherwise
    faithful = [t for t in report.tried if t["label"] in report.measured
                and acceptable(t["quality"], report.tolerance)]
    assert report.timed or report.chosen["predicted_cost"] <= min(t["predicted_cost"] for t in faithful)
    # the range-check decomposition was sized to the model; ezkl's 2^14-row default is kept only
    # where it takes a logrow off every sized one and, if timed, proved faster beyond the noise
    assert any(c["layout"]["decomp_base"] < 16384 for c in report.tried)
    chosen = report.chosen
    if chosen["layout"]["decomp_base"] >= 16384:
        sized = [c["logrows"] for c in report.tried
                 if c["input_scale"] == chosen["input_scale"] and c["layout"]["decomp_base"] < 16384]
        assert chosen["logrows"] < min(sized), report.tried
        times = [(t["label"], t["prove_s"]) for t in report.timed]
        if times and times[0][0] == chosen["label"]:  # predicted cheapest: nothing beat it outright
            assert all(s >= (1 - TIMING_NOISE) * times[0][1] for _, s in times)
        elif times:  # it beat the predicted cheapest beyond the noise
            assert dict(times)[chosen["label"]] < (1 - TIMING_NOISE) * times[0][1]


def test_second_compile_is_a_cache_hit_without_setup(zoo, circuits, ws):
    again = proofmint.compile(zoo["lenet"].onnx, workspace=ws)
    assert again.cached and again.circuit_id == circuits["lenet"].circuit_id
    assert "setup" not in again.timings


def test_tampered_proof_byte_is_rejected(proofs, ws, tmp_path):
    data = json.loads(open(proofs["lenet"]).read())
    data["ezkl_proof"]["proof"][200] ^= 0x01
    p = tmp_path / "tampered.json"
    p.write_text(json.dumps(data))
    result = proofmint.verify(p, workspace=ws)
    assert not result.valid
    cli = run_cli("verify", p, "--workspace", ws)
    assert cli.returncode == 1, cli.stderr


def test_tampered_instance_is_rejected(proofs, ws, tmp_path):
    data = json.loads(open(proofs["mlp"]).read())
    inst = data["ezkl_proof"]["instances"][0]
    inst[0], inst[1] = inst[1], inst[0]
    p = tmp_path / "swapped.json"
    p.write_text(json.dumps(data))
    assert not proofmint.verify(p, workspace=ws).valid


def test_false_output_claim_is_rejected(proofs, ws, tmp_path):
    data = json.loads(open(proofs["mlp"]).read())
    data["outputs"][0][0] += 1.0
    p = tmp_path / "claim.json"
    p.write_text(json.dumps(data))
    result = proofmint.verify(p, workspace=ws)
    assert not result.valid and "claimed output" in result.reason


def test_an_srs_larger_than_the_circuit_verifies_from_its_first_points_only(zoo, tmp_path):
    """verify reads only what a KZG verifier uses (ezkl's reduced SRS): a ceremony file larger
    than the circuit still verifies a genuine proof and rejects every tampered one."""
    big = tmp_path / "k12.srs"
    ezkl_layer.gen_srs(big, 12)
    ws = tmp_path / "ws"
    c = proofmint.compile(zoo["mlp"].onnx, srs=big, workspace=ws)
    assert c.package.logrows < 12 and c.srs_warning is None
    bundle = proofmint.prove(c.circuit_id, input=zoo["mlp"].input, out=tmp_path / "p.json", workspace=ws).bundles[0]
    assert proofmint.verify(bundle, workspace=ws).valid
    for name, data in tampered(bundle).items():
        p = tmp_path / "t.json"
        p.write_text(json.dumps(data))
        assert not proofmint.verify(p, workspace=ws).valid, name


def test_proof_fails_against_another_circuits_vk(zoo, proofs, ws):
    other = proofmint.compile(zoo["mlp"].onnx, target="resources", workspace=ws)
    mine = load_bundle(proofs["mlp"])
    assert other.circuit_id != mine.circuit_id
    result = proofmint.verify(proofs["mlp"], circuit=other.circuit_id, workspace=ws)
    assert not result.valid


def test_jsonl_and_npy_inputs_give_one_bundle_each(zoo, circuits, ws, tmp_path):
    calib = np.array(json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]).reshape(-1, 13)
    jl = tmp_path / "inputs.jsonl"
    jl.write_text("\n".join(json.dumps(list(x)) for x in calib[:2]) + "\n")
    r = proofmint.prove(circuits["mlp"].circuit_id, input=jl, out=tmp_path / "p.json", workspace=ws)
    assert [p.split("/")[-1] for p in r.bundles] == ["p-0000.json", "p-0001.json"]
    assert all(proofmint.verify(p, workspace=ws).valid for p in r.bundles)
    npy = tmp_path / "one.npy"
    np.save(npy, calib[2])
    one = proofmint.prove(circuits["mlp"].circuit_id, input=npy, out=tmp_path / "n.json", workspace=ws)
    assert proofmint.verify(one.bundles[0], workspace=ws).valid


@pytest.mark.slow  # compiles and proves a fresh model (no HEAVY fixture marks it)
def test_cli_flow_on_an_onnx_the_zoo_never_saw(tmp_path):
    """The README's new-user commands, on a fresh model with no calibration file beside it."""
    import torch

    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 5))
    onnx_path = tmp_path / "fresh.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 6, 6),), str(onnx_path), opset_version=18, dynamo=False)
    inp = tmp_path / "x.json"
    inp.write_text(json.dumps({"input_data": [np.random.default_rng(1).standard_normal(36).tolist()]}))
    ws = tmp_path / "ws"

    c = run_cli("compile", onnx_path, "--workspace", ws, "--json")
    assert c.returncode == 0, c.stderr
    compiled = json.loads(c.stdout)
    assert "standard-normal" in c.stderr  # says it had no calibration data
    cid = compiled["circuit_id"]
    p = run_cli("prove", cid[:12], "--input", inp, "--out", tmp_path / "p.json", "--workspace", ws)
    assert p.returncode == 0, p.stderr
    v = run_cli("verify", tmp_path / "p.json", "--workspace", ws, "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["valid"], v.stderr
