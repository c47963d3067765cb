"""ERC-7992 (draft) on a real anvil: the registry is its verifier (ERC-165 id, proofSystemOf,
registry) and its registry's getModel; verifyInference of one real inference emits
InferenceVerified, and refuses a wrong input commitment, output or proof by the draft's errors."""

from __future__ import annotations

import pytest
from eth_utils import function_signature_to_4byte_selector as selector, keccak

from proofmint import encoding
from proofmint.errors import TransactionRevertedError
from proofmint.prover import load_bundle
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.mint import item_commitments
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.publish import packed_outputs

from .test_onchain import model_id

VERIFY = "verifyInference(uint256,bytes32,bytes,bytes)"


def _xor(*sigs: str) -> bytes:
    out = 0
    for sig in sigs:
        out ^= int.from_bytes(selector(sig), "big")
    return out.to_bytes(4, "big")


def test_the_registry_states_erc7992_and_names_its_proof_system(deployed, circuits, ws, anvil):
    pkg = circuits["mlp"].package
    mid = model_id(ws, pkg.circuit_id)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        r = deployment(c).registry.functions
        assert r.supportsInterface(_xor(VERIFY, "proofSystemOf(uint256)", "registry()")).call()
        assert r.supportsInterface(bytes.fromhex("01ffc9a7")).call()  # ERC-165 itself
        assert not r.supportsInterface(bytes.fromhex("80ac58cd")).call()  # ERC-721: not a registry's
        assert r.proofSystemOf(int.from_bytes(mid, "big")).call() == keccak(b"ezkl-halo2-kzg-bn254-v23")[:4]
        assert r.registry().call() == deployment(c).registry.address
        (model_hash, circuit_hash, vk_hash, system, uri), deprecated, owner = \
            r.getModel(int.from_bytes(mid, "big")).call()
        assert (model_hash.hex(), circuit_hash.hex()) == (pkg.model_id, pkg.circuit_id)
        assert system == keccak(b"ezkl-halo2-kzg-bn254-v23")[:4] and uri.startswith("ipfs://")
        assert not deprecated and owner == c.address


def test_verify_inference_of_one_real_inference_and_its_refusals(deployed, circuits, proofs, ws, anvil):
    pkg = circuits["mlp"].package
    bundle = load_bundle(proofs["mlp"])
    mid = int.from_bytes(model_id(ws, pkg.circuit_id), "big")
    commitment = item_commitments(bundle, pkg)[0]
    output = packed_outputs(bundle, pkg, 0)
    proof = encoding.aigc_proof(bundle.proof_bytes, bundle.instance_words, [], 0)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        verify = d.registry.get_function_by_signature(VERIFY)
        receipt = c.transact(verify(mid, commitment, output, proof), d.abi)
        (event,) = d.registry.events.InferenceVerified().process_receipt(receipt)
        assert (event.args.modelId, event.args.inputCommitment, event.args.output) == (mid, commitment, output)
        print(f"\ngas: ERC-7992 verifyInference of the wine MLP {receipt['gasUsed']:,}")
        flipped = bytearray(bundle.proof_bytes)
        flipped[100] ^= 1
        for args, error in (((mid, b"\x01" * 32, output, proof), "InputCommitmentMismatch"),
                            ((mid, commitment, output[:-1] + b"\x07", proof), "OutputMismatch"),
                            ((mid, commitment, output, encoding.aigc_proof(bytes(flipped), bundle.instance_words,
                                                                           [], 0)), "InvalidProof"),
                            ((mid + 1, commitment, output, proof), "ModelRegistryUnknownModel")):
            with pytest.raises(TransactionRevertedError, match=error):
                c.transact(verify(*args), d.abi)
