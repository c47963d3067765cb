"""Batch circuits: one proof of N inferences, verified locally and on-chain, minted as N tokens."""

import json

import pytest

import proofmint
from proofmint.errors import UsageError
from proofmint.prover import load_bundle

BATCH = 4


@pytest.fixture(scope="session")
def batch_proofs(zoo, ws, tmp_path_factory):
    """Six wine inputs and one far out of range, through a batch-4 hashed-input MLP circuit."""
    c = proofmint.compile(zoo["mlp"].onnx, input_visibility="hashed", batch=BATCH, workspace=ws)
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    rows = [calib[i * 13:(i + 1) * 13] for i in range(6)]
    rows.insert(2, [1e6] * 13)  # unprovable: reported, the others still proven
    out = tmp_path_factory.mktemp("batch")
    stream = out / "stream.jsonl"
    stream.write_text("\n".join(json.dumps({"input_data": [r]}) for r in rows))
    return c, proofmint.prove(c.circuit_id, input=stream, out=out / "b.json", workspace=ws), rows


def test_batch_circuit_packs_inputs_and_pads_the_last_batch(batch_proofs):
    c, result, rows = batch_proofs
    assert c.package.batch_size == BATCH
    assert [f.index for f in result.failures] == [2]
    assert [(b.inputs, b.padding) for b in result.batches] == [([0, 1, 3, 4], 0), ([5, 6], 2)]
    assert [b.bundle for b in result.batches] == result.bundles
    first, second = (load_bundle(p) for p in result.bundles)
    assert (first.count, second.count) == (4, 2)
    items = [first.input[i * 13:(i + 1) * 13] for i in range(4)]
    assert items == [pytest.approx(rows[i], abs=1e-6) for i in (0, 1, 3, 4)]
    assert second.input[2 * 13:] == second.input[13:26] * 2  # padding repeats the last input
    assert first.argmax_agrees and second.argmax_agrees


def test_batch_circuit_drops_freivalds_columns_that_save_no_logrow(batch_proofs):
    report = batch_proofs[0].package.calibration_report
    base = report.chosen["label"].removesuffix("-nofreivalds")
    ezkl_layout = [t for t in report.tried if t["label"] == base]
    assert ezkl_layout and ezkl_layout[0]["layout"]["freivalds_columns"] > 0  # ezkl's default
    chosen = report.chosen
    assert chosen["layout"]["disable_freivalds"] and chosen["layout"]["freivalds_columns"] == 0
    assert chosen["logrows"] == ezkl_layout[0]["logrows"]
    assert chosen["quality"]["argmax_agreement"] >= 0.99


def test_batch_proofs_verify_and_an_edited_item_output_does_not(batch_proofs, ws, tmp_path):
    _, result, _ = batch_proofs
    for path in result.bundles:
        assert proofmint.verify(path, workspace=ws).valid
    data = json.loads(open(result.bundles[0]).read())
    data["outputs"][0][4] += 1.0  # item 1's first output
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    verdict = proofmint.verify(edited, workspace=ws)
    assert not verdict.valid and "claimed output 4" in verdict.reason


def test_batch_mint_makes_one_token_per_real_inference(batch_proofs, ws, anvil):
    c, result, _ = batch_proofs
    deployed = proofmint.deploy(c.circuit_id, rpc_url=anvil.url, workspace=ws)
    assert deployed.verifier_kind == "dedicated"  # no Freivalds columns: fits EIP-170
    minted = [proofmint.mint(p, rpc_url=anvil.url, workspace=ws) for p in result.bundles]
    assert [len(m.token_ids) for m in minted] == [4, 2]  # padding is never minted
    ids = [t for m in minted for t in m.token_ids]
    assert ids == list(range(ids[0], ids[0] + 6))
    commitments = set()
    for m in minted:
        print(f"\nGAS batch-{BATCH} hashed mint of {len(m.token_ids)}: {m.gas_used['mint']:,}")
        for index, token_id in enumerate(m.token_ids):
            shown = proofmint.show(token_id, rpc_url=anvil.url, workspace=ws)
            assert shown.token_id == token_id
            assert shown.record["batchIndex"] == index
            assert shown.record["batchCount"] == len(m.token_ids)
            assert shown.metadata["proof"]["batch_index"] == shown.record["batchIndex"]
            commitments.add(shown.record["inputCommitment"])
            verdict = proofmint.verify_asset(token_id, rpc_url=anvil.url, workspace=ws)
            assert verdict.valid, verdict.to_dict()["checks"]
            assert all(check.ok for check in verdict.checks.values())
    assert len(commitments) == 6  # each token commits to its own input
    _padding_is_not_a_token(minted[1], result.bundles[1], c.package, ws, anvil)


def _padding_is_not_a_token(minted, bundle_path, pkg, ws, anvil):
    """ERC-7007 verify() answers for the real items of a mint only, never its padding."""
    from eth_abi import encode

    from proofmint.store import Workspace
    from proofmint.verifier.chain.client import connect
    from proofmint.verifier.chain.records import deployment

    bundle = load_bundle(bundle_path)
    instances = bundle.instance_words
    layout = pkg.layout
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        assert c.deployments_file == Workspace.resolve(ws).deployments(c.chain_id)
        d = deployment(c)
        token = d.token
        assert token.address == json.loads(c.deployments_file.read_text())["token"]
        mid = bytes.fromhex(d.token_record(minted.token_ids[0])["modelId"][2:])
        answers = []
        for index in range(pkg.batch_size):  # 2 real items, then 2 of padding
            start = layout.output_start + index * layout.output_count
            item_outputs = instances[start:start + layout.output_count]
            assert item_outputs == layout.outputs_of(instances, index)
            outputs = b"".join(v.to_bytes(32, "big") for v in item_outputs)
            commitment = keccak_item(instances, layout, index)  # the padding's too: a real verify input
            prompt = encode(["bytes32", "bytes32"], [mid, commitment])
            proof = encode(["bytes", "uint256[]", "bytes32[]", "uint256"],
                           [bundle.proof_bytes, instances, [], index])
            answers.append(c.call(token.functions.verify(prompt, outputs, proof), d.abi))
    assert answers == [True, True, False, False]


def keccak_item(instances, layout, index):
    """The input commitment the contract would compute for item ``index`` (hashed input)."""
    from eth_abi import encode
    from eth_utils import keccak

    return keccak(encode(["bytes32", "uint256"], [instances[layout.input_start].to_bytes(32, "big"), index]))


def _fixed_batch_graph(path):
    """A hand-written graph with batch 1 hard-coded in a Reshape: no symbolic axis to set."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(np.array([1, 8], dtype=np.int64), "shape")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.slow  # compiles and proves a batch circuit (no HEAVY fixture marks it)
def test_a_fixed_batch_graph_is_batched_side_by_side(ws, tmp_path):
    import numpy as np

    onnx_path = _fixed_batch_graph(tmp_path / "fixed.onnx")
    rows = np.random.default_rng(4).uniform(-1, 1, (6, 6))
    (tmp_path / "input.json").write_text(json.dumps({"input_data": [rows[0].tolist()]}))
    c = proofmint.compile(onnx_path, batch=BATCH, workspace=ws)
    pkg = c.package
    assert pkg.batch_size == BATCH and pkg.calibration_report.graph == "side-by-side"
    assert pkg.quantization["relative_max_error"] <= 0.01
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(json.dumps(r.tolist()) for r in rows))
    result = proofmint.prove(c.circuit_id, input=stream, out=tmp_path / "b.json", workspace=ws)
    assert not result.failures and [b.padding for b in result.batches] == [0, 2]
    for path in result.bundles:
        assert proofmint.verify(path, workspace=ws).valid
        b = load_bundle(path)
        assert b.max_abs_diff <= 0.01 * pkg.quantization["output_range"] + 1e-9


def test_batch_needs_public_outputs(zoo, ws):
    with pytest.raises(UsageError, match="output-visibility public"):
        proofmint.compile(zoo["mlp"].onnx, batch=4, output_visibility="hashed", workspace=ws)
    with pytest.raises(UsageError, match="--batch must be"):
        proofmint.compile(zoo["mlp"].onnx, batch=0, workspace=ws)
