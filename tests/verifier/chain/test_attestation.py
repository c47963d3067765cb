"""The accuracy attestation on a real anvil: a registration carries the circuit's measured
fidelity (readable by any contract), each token's metadata the circuit's figures and its own
proof's error; ``verify-asset`` compares them with the published package, the bundle and a
re-run of the float model, and names an edited one."""

from __future__ import annotations

import json

import proofmint
from eth_account import Account

from proofmint.prover import load_bundle
from proofmint.store import atomic_write_json
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import NO_ARGMAX, fidelity
from proofmint.verifier.chain.mint import publish_tokens
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.publish import token_error_ppm
from proofmint.verifier.content.store import ContentStore, raw_digest

from .test_onchain import commit_by_hand, model_id
from .test_trust import _contracts, _fresh_mlp_proof, _mint_through, _model, _registration


def test_the_registration_carries_the_circuits_measured_fidelity(deployed, circuits, ws, anvil):
    pkg = circuits["mlp"].package
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registered = _model(c, model_id(ws, pkg.circuit_id))["fidelity"]
    print(f"\ngas: register the wine MLP (fidelity, no inputFrom) {deployed['mlp'].gas['register_model']:,}")
    q = pkg.quantization
    assert registered["samples"] == q["samples"] > 0
    assert registered["errorPpm"] / 1e6 >= q["relative_max_error"] > (registered["errorPpm"] - 1) / 1e6
    assert registered["argmaxBps"] == (NO_ARGMAX if "argmax_agreement" not in q else int(q["argmax_agreement"] * 1e4))
    assert bytes.fromhex(registered["referenceEngine"][2:]).rstrip(b"\0") == pkg.reference.encode()
    # the samples judged are named: their digest, which any contract reads beside the figures
    assert registered["samplesDigest"] == "0x" + q["samples_digest"] != "0x" + "00" * 32


def test_an_edited_accuracy_attestation_is_flagged(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Fiona registers the genuine MLP circuit and verifier with a better error than compile
    measured (1 ppm of the span) and mints a genuine proof through it: the chain accepts the
    proof; verify-asset names the attestation."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 42))
    fiona = Account.create()
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        c.w3.eth.send_transaction({"from": c.address, "to": fiona.address, "value": 10**18})
        genuine = _registration(pkg, deployed["mlp"].verifier)
        assert genuine["fidelity"] == fidelity(pkg)
        edited = {**genuine, "fidelity": {**genuine["fidelity"], "errorPpm": 1}}
        tid = _mint_through(c, registry, token, abi, fiona, edited, bundle, pkg, ws)
    verdict = proofmint.verify_asset(tid, rpc_url=anvil.url, workspace=ws)
    check = verdict.checks["accuracy attestation"]
    assert not check.ok and not verdict.valid
    assert "the registered fidelity (0.0001 % of span" in check.detail
    assert "is not the published circuit's measurement" in check.detail
    others = {k for k, v in verdict.checks.items() if not v.ok}
    assert others == {"accuracy attestation"}, others  # the proof, model and content are genuine


def test_a_token_whose_metadata_states_a_smaller_error_is_flagged(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A minter publishes metadata stating a tenth of its proof's error, and mints with it (the
    chain records whichever metadata digest the minter gives): verify-asset names the edit."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 43))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        mid = model_id(ws, pkg.circuit_id)
        bundle_file = atomic_write_json(c.ws.path("hand-minted", f"{bundle.proof_hash}.json"), bundle.to_dict())
        proof_uri, (content,) = publish_tokens(d, bundle, pkg, bundle_file, model_id="0x" + mid.hex())
        meta = content.metadata
        stated = {a["trait_type"]: a["value"] for a in meta["attributes"]}
        assert stated["proof max error"] > 0
        meta["attributes"] = [{**a, "value": a["value"] / 10} if a["trait_type"].startswith("proof max error") else a
                              for a in meta["attributes"]]
        digest = raw_digest(ContentStore(c.ws).add_bytes(json.dumps(meta).encode()))
        request, instances = commit_by_hand(c, d.token, d.abi, bundle, pkg, mid, metadata=[digest])
        request["proofURI"] = proof_uri
        c.transact(d.token.functions.mint(request, bundle.proof_bytes, instances, []), d.abi)
        tid = d.token.functions.totalMinted().call()
    verdict = proofmint.verify_asset(tid, rpc_url=anvil.url, workspace=ws)
    check = verdict.checks["accuracy attestation"]
    assert "proof max error, proof max error (% of span) differ from the package's and bundle's" in check.detail
    assert "the token's stated error" in check.detail  # and the re-run measures the real one
    assert {k for k, v in verdict.checks.items() if not v.ok} == {"accuracy attestation"}


def test_a_token_recording_a_smaller_error_on_chain_is_flagged(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A minter publishes the genuine metadata but records a perfect proof (no error) in the
    token, the figure a contract reads: the chain takes the statement, verify-asset names it."""
    pkg = circuits["mlp"].package
    bundle = load_bundle(_fresh_mlp_proof(zoo, circuits, ws, tmp_path, 44))
    genuine = token_error_ppm(bundle, pkg, 0)
    assert genuine > 0  # a few millionths of the span: the wine MLP is proven closely
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        request, instances = commit_by_hand(c, d.token, d.abi, bundle, pkg, model_id(ws, pkg.circuit_id))
        assert request["errorPpm"] == [genuine]
        c.transact(d.token.functions.mint({**request, "errorPpm": [0]}, bundle.proof_bytes,
                                          instances, []), d.abi)
        tid = d.token.functions.totalMinted().call()
        assert d.token_record(tid)["errorPpm"] == 0
    verdict = proofmint.verify_asset(tid, rpc_url=anvil.url, workspace=ws)
    check = verdict.checks["accuracy attestation"]
    assert "the token's recorded error (0.0000 % of span) is not its proof's" in check.detail
    assert {k for k, v in verdict.checks.items() if not v.ok} == {"accuracy attestation"}
