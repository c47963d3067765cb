"""A model proven as linked segments, on a real anvil with the `segmented` fixture's real proofs
(the zoo LeNet as 3 hashed segments): one registration binds every segment's verifier, key and
the link layout; one mint checks every proof and link and mints one token whose replay key
covers every segment's instances; and the chain refuses each tampering of the chain of proofs
(swapped, reordered, missing, foreign segment proof, broken link) and every unsound registration."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

import proofmint
from proofmint import encoding
from proofmint.errors import ChainError, TransactionRevertedError, VerificationError
from proofmint.prover.segmented import load_any
from proofmint.store import Workspace
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.deploy import registration, segments_of, vka_for
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.mint import await_commit_age, item_commitments, statement_of
from proofmint.verifier.chain.records import deployment
from proofmint.verifier.content.segmented import encode_proofs, statement
from proofmint.verifier.evm import verifier_artifact

OSCAR = Account.from_key(dev_keys()[6])  # registers segments that are not his, under circuit hashes of his own
SEGMENTED_KEY = keccak(text="proofmint.segmented")


@pytest.fixture(scope="module")
def chain(segmented, anvil):
    """The segmented LeNet deployed on the session's anvil (a repeat is a no-op) and its second
    inference minted (or, minted already by another module, found again). The first is never
    minted under this registration: the tampering tests below start from it."""
    ws, sid = segmented["ws"], segmented["compile"].circuit_id
    dep = proofmint.deploy(sid, rpc_url=anvil.url, workspace=ws)
    minted = proofmint.mint(segmented["other"], rpc_url=anvil.url, workspace=ws, resume=True)
    return {"deploy": dep, "mint": minted, "ws": ws, "sid": sid}


def _handles(c, chain):
    d = deployment(c)
    assert d.token.address == chain["deploy"].token
    return d, bytes.fromhex(d.entry(chain["sid"])["model_id"][2:])


def test_deploy_registers_every_segment_its_order_and_links(chain, segmented, anvil):
    dep, ws = chain["deploy"], chain["ws"]
    spkg = segmented["compile"].package
    assert dep.verifier_kind == "segmented" and [s["circuit_id"] for s in dep.segments] == spkg.segments
    assert all(s["kind"] == "dedicated" and s["runtime_bytes"] <= 24_576 for s in dep.segments)
    assert proofmint.deploy(chain["sid"], rpc_url=anvil.url, workspace=ws).already_deployed
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d, mid = _handles(c, chain)
        reg, held = d.model("0x" + mid.hex()), d.segments("0x" + mid.hex())
        pkgs = spkg.packages(ws, verify_only=True)
        segs = held["segments"]
        assert [s["circuitHash"][2:] for s in segs] == spkg.segments
        assert [s["verifier"] for s in segs] == [s["address"] for s in dep.segments]
        assert [s["instanceCount"] for s in segs] == [p.layout.instance_count for p in pkgs] == [65, 2, 11]
        for s in segs:
            assert s["codeHash"] == "0x" + keccak(bytes(c.w3.eth.get_code(s["verifier"]))).hex()
        # hashed links: segment i's output hash is segment i+1's input hash
        assert held["links"] == [{"outputs": [64], "inputs": [0]}, {"outputs": [1], "inputs": [0]}]
        assert reg["circuitHash"][2:] == chain["sid"] and reg["onnxHash"][2:] == spkg.model_id
        assert reg["instanceCount"] == 78 and reg["verifier"] == segs[0]["verifier"]
        assert reg["vkHash"] == "0x" + keccak(b"".join(bytes.fromhex(s["vkHash"][2:]) for s in segs)).hex()
        assert (reg["inputStart"], reg["inputCount"], reg["outputStart"], reg["outputCount"]) == (0, 64, 68, 10)


def test_one_mint_verifies_every_segment_and_link_and_mints_one_token(chain, segmented, anvil):
    m, ws = chain["mint"], chain["ws"]
    gas = m.gas_used
    if gas:  # this module minted it (another module's mint was found again with the same figures)
        per = [gas[f"verify_segment_{i}"] for i in range(3)]
        print(f"\nGAS segmented LeNet (3 hashed segments): verifyProof alone {', '.join(f'{g:,}' for g in per)} "
              f"(sum {sum(per):,}); the one mint (3 proofs + 2 links + token) {gas['mint']:,}; commit {gas['commit']:,}")
        assert gas["mint"] > sum(per) - 3 * 21_000  # every segment verified inside the one transaction
    assert len(m.token_ids) == 1
    bundle = load_any(segmented["other"])
    chained, view = statement_of(ws, bundle)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d, mid = _handles(c, chain)
        rec = d.token_record(m.token_id)
        # the replay key: every segment's verifier and instance count, and all 78 instances
        segs = d.segments("0x" + mid.hex())["segments"]
        key = keccak(encode(["bytes32", "bytes32[]", "uint32[]"],
                            [SEGMENTED_KEY, [bytes.fromhex(s["codeHash"][2:]) for s in segs],
                             [s["instanceCount"] for s in segs]]))
        words = chained.instance_words
        assert len(words) == 78 and words == encoding.uints(bundle.instances)
        expected = keccak(encode(["bytes32", "bytes32"], [key, keccak(b"".join(encoding.word(w) for w in words))]))
        assert rec["inferenceId"] == "0x" + expected.hex()
        assert d.registry.functions.verifierKey(mid).call() == key
        # input from the first segment (64 public words), outputs from the last (its 10 words)
        assert rec["inputCommitment"] == "0x" + item_commitments(chained, view)[0].hex()
        assert rec["inputCommitment"] == "0x" + keccak(b"".join(encoding.word(w) for w in words[:64])).hex()
        assert rec["outputsHash"] == "0x" + keccak(b"".join(encoding.word(w) for w in words[68:])).hex()
        assert rec["proofHash"] == "0x" + keccak(encode_proofs(bundle)).hex()
    shown = proofmint.show(m.token_id, rpc_url=anvil.url, workspace=ws)
    assert [s["circuitHash"][2:] for s in shown.segments["segments"]] == segmented["compile"].package.segments
    assert shown.metadata["segments"] == {"count": 3, "link": "hashed",
                                          "circuits": ["0x" + s for s in segmented["compile"].package.segments]}
    with pytest.raises(ChainError, match="already token"):
        proofmint.mint(segmented["other"], rpc_url=anvil.url, workspace=ws)


# What mint says of a bundle whose segment 1 proof was edited, or whose segments were reordered.
REFUSED = {"proof": "segment 1's verifier 0x[0-9a-fA-F]{40} rejects its proof",
           "order": "not segmented circuit \\w+'s 3 segments, in its order"}


@pytest.mark.parametrize("edit", REFUSED)
def test_mint_refuses_a_tampered_segmented_bundle_before_any_transaction(edit, chain, segmented, anvil, tmp_path):
    error = REFUSED[edit]
    data = json.loads(open(segmented["bundle"]).read())
    segs = data["segments"]
    if edit == "proof":
        segs[1]["ezkl_proof"]["proof"][100] ^= 1
    else:
        segs[1], segs[2] = segs[2], segs[1]
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    with connect(rpc_url=anvil.url, workspace=chain["ws"]) as c:
        nonce = c.w3.eth.get_transaction_count(c.address)
        with pytest.raises(VerificationError, match=error):
            proofmint.mint(path, rpc_url=anvil.url, workspace=chain["ws"])
        assert c.w3.eth.get_transaction_count(c.address) == nonce  # no commit was sent


def _tampered(segmented, kind: str) -> tuple[list, bytes, list[int]]:
    """The first inference's chain with one tampering: its segments (for the checks below),
    the encoded proofs and the instances back to back, as a mint sends them."""
    a, b = load_any(segmented["bundle"]), load_any(segmented["other"])
    segs = list(a.segments)
    proofs = [bytes(s.ezkl_proof["proof"]) for s in segs]
    instances = [encoding.uints(s.instances) for s in segs]
    if kind == "swapped":  # two segments' proof bytes in each other's places, the instances kept
        proofs[1], proofs[2] = proofs[2], proofs[1]
    elif kind == "reordered":  # two whole segments (proof and instances) in each other's places
        proofs[1], proofs[2] = proofs[2], proofs[1]
        instances[1], instances[2] = instances[2], instances[1]
    elif kind == "missing":
        del proofs[1], instances[1]
    elif kind == "foreign":  # a genuine proof of segment 1 from the other inference: it verifies alone
        proofs[1], instances[1] = bytes(b.segments[1].ezkl_proof["proof"]), encoding.uints(b.segments[1].instances)
    elif kind == "broken link":  # the first two segments of one inference, the last of the other
        proofs[2], instances[2] = bytes(b.segments[2].ezkl_proof["proof"]), encoding.uints(b.segments[2].instances)
    return proofs, encode(["bytes[]"], [proofs]), [w for group in instances for w in group]


# What the registry names for each tampering (segment 1's proof alone is genuine in `foreign`).
TAMPERED = {"swapped": r"ModelRegistrySegmentRejected\(\w+, 1\)", "reordered": r"ModelRegistryLinkBroken\(\w+, 0\)",
            "missing": r"ModelRegistrySegmentCount\(\w+, 2, 3\)", "foreign": r"ModelRegistryLinkBroken\(\w+, 0\)",
            "broken link": r"ModelRegistryLinkBroken\(\w+, 1\)"}


@pytest.mark.parametrize("kind", TAMPERED)
def test_the_chain_refuses_every_tampering_of_the_segment_proofs(kind, chain, segmented, anvil):
    """Committed and revealed by hand, as an attacker would send it: the registry names the
    segment or link that fails, and no token is minted."""
    error = TAMPERED[kind]
    proofs, proof, instances = _tampered(segmented, kind)
    chained, view = statement_of(chain["ws"], load_any(segmented["bundle"]))
    with connect(rpc_url=anvil.url, workspace=chain["ws"]) as c:
        d, mid = _handles(c, chain)
        token, abi = d.token, d.abi
        if kind in ("foreign", "broken link"):  # each segment's proof is genuine: only the link is wrong
            for p, seg, s, words in zip(view.segments, d.entry(chain["sid"])["segments"], proofs,
                                        [instances[:65], instances[65:67], instances[67:]]):
                verifier = c.contract(seg["address"], verifier_artifact(p)["abi"])
                assert verifier.functions.verifyProof(s, words).call()
        assert not d.registry.functions.checkInference(mid, proof, instances, []).call()
        inference = token.functions.inferenceIdOf(mid, instances).call()
        salt = os.urandom(32)
        receipt = c.transact(token.functions.commit(token.functions.commitmentFor(c.address, inference, salt).call()),
                             abi)
        await_commit_age(d, receipt)
        request = {"modelId": mid, "to": c.address, "parent": 0, "inputCommitment": item_commitments(chained, view)[0],
                   "salt": salt, "proofURI": "", "count": 1, "metadata": [b"\x01" * 32],
                   "errorPpm": [0], "parentOutputs": []}
        before = token.functions.totalMinted().call()
        with pytest.raises(TransactionRevertedError, match=error):
            c.transact(token.functions.mint(request, proof, instances, []), abi)
        assert token.functions.totalMinted().call() == before


def test_a_proof_that_is_no_chain_of_proofs_is_rejected_not_a_revert_in_erc7007_verify(chain, segmented, anvil):
    bundle = load_any(segmented["bundle"])
    chained = statement(bundle)
    with connect(rpc_url=anvil.url, workspace=chain["ws"]) as c:
        d, mid = _handles(c, chain)
        words = chained.instance_words
        assert d.registry.functions.checkInference(mid, encode_proofs(bundle), words, []).call()
        for garbage in (b"", b"\x01" * 100, bytes(chained.ezkl_proof["proof"])[:-1]):
            assert not d.registry.functions.checkInference(mid, garbage, words, []).call()
            assert d.registry.functions.checkSegments(mid, garbage, words, []).call()[0] == 2  # Malformed
        assert d.registry.functions.checkSegments(mid, encode_proofs(bundle), words[:-1], []).call()[0] == 2
        assert d.registry.functions.checkSegments(mid, encode_proofs(bundle), words, [b"\x01" * 32]).call()[0] == 2


def _genuine(c, chain, segmented) -> tuple[dict, list, list]:
    """The genuine registration of the segmented LeNet (registration, segments, links), as
    deploy sends it, for OSCAR to edit."""
    ws = chain["ws"]
    spkg = segmented["compile"].package
    _, view = statement_of(ws, load_any(segmented["bundle"]))
    assert view.spkg.circuit_id == spkg.circuit_id
    entry = deployment(c).entry(chain["sid"])
    verifiers = [s["address"] for s in entry["segments"]]
    arts = [verifier_artifact(p) for p in view.segments]
    return registration(view, verifiers[0], arts), segments_of(view, verifiers, arts), \
        [link.solidity() for link in view.links]


def _edit(reg, segments, links, kind):
    reg, segments, links = dict(reg), [dict(s) for s in segments], [dict(k) for k in links]
    reg["circuitHash"] = keccak(text=f"oscar {kind}")
    if kind == "one segment":
        segments, links = segments[:1], []
    elif kind == "no link":
        links = links[:1]
    elif kind == "empty link":
        links[0] = {"outputs": [], "inputs": []}
    elif kind == "link out of its segment":
        links[1] = {"outputs": [2], "inputs": [0]}  # segment 1 has 2 instances
    elif kind == "uneven link":
        links[0] = {"outputs": [64], "inputs": [0, 1]}
    elif kind == "instance count":
        reg["instanceCount"] -= 1
    elif kind == "vk hash":
        reg["vkHash"] = segments[0]["vkHash"]
    elif kind == "verifier":
        reg["verifier"] = segments[1]["verifier"]
    elif kind == "outputs before the last segment":
        reg["outputStart"] = 64  # segment 0's link hash: an output the last segment never proves
    elif kind == "batch":
        reg["batchSize"] = 2
    elif kind == "verifier without code":
        segments[2]["verifier"] = OSCAR.address
    elif kind == "vka for a dedicated verifier":
        segments[1]["vkaLength"] = 1
    return reg, segments, links


UNSOUND = {"one segment": "InvalidSegments", "no link": "InvalidSegments",
           "empty link": r"InvalidLink\(\w+, 0\)", "link out of its segment": r"InvalidLink\(\w+, 1\)",
           "uneven link": r"InvalidLink\(\w+, 0\)", "instance count": "InvalidSegments", "vk hash": "InvalidSegments",
           "verifier": "InvalidSegments", "outputs before the last segment": "InvalidSegments",
           "batch": "InvalidSegments", "verifier without code": "NoVerifierCode",
           "vka for a dedicated verifier": "InvalidSegments"}  # ModelRegistry's error for each edit


@pytest.mark.parametrize("kind", UNSOUND)
def test_an_unsound_segmented_registration_is_refused(kind, chain, segmented, anvil):
    error = "ModelRegistry" + UNSOUND[kind]
    with connect(rpc_url=anvil.url, workspace=chain["ws"]) as c:
        d, _ = _handles(c, chain)
        reg, segments, links = _edit(*_genuine(c, chain, segmented), kind)
        fn = d.registry.functions.registerSegmentedModel(reg, segments, links, [], [OSCAR.address], [10_000])
        with pytest.raises(TransactionRevertedError, match=error):
            c.transact(fn, d.abi, account=OSCAR)


def test_an_alias_of_the_segments_cannot_mint_the_inference_again_and_is_flagged(chain, segmented, anvil):
    """Oscar registers the owner's segments, verifiers and links under a registration of his
    own and replays the minted chain: one inference space, so the chain refuses; show names
    the owner's registration as the first of the same verifier key."""
    bundle = load_any(segmented["other"])
    chained, view = statement_of(chain["ws"], bundle)
    with connect(rpc_url=anvil.url, workspace=chain["ws"]) as c:
        d, owner_mid = _handles(c, chain)
        reg, segments, links = _genuine(c, chain, segmented)
        reg = {**reg, "circuitHash": keccak(text="oscar's alias"), "royaltyBps": 2_500}
        c.transact(d.registry.functions.registerSegmentedModel(reg, segments, links, [], [OSCAR.address], [10_000]),
                   d.abi, account=OSCAR)
        mid = d.registry.functions.modelIdOf(OSCAR.address, reg["circuitHash"]).call()
        assert d.registry.functions.verifierKey(mid).call() == d.registry.functions.verifierKey(owner_mid).call()
        words = chained.instance_words
        inference = d.token.functions.inferenceIdOf(mid, words).call()
        assert d.token.functions.tokenOfInference(inference).call() == chain["mint"].token_id
        salt = os.urandom(32)
        receipt = c.transact(d.token.functions.commit(
            d.token.functions.commitmentFor(OSCAR.address, inference, salt).call()), d.abi, account=OSCAR)
        await_commit_age(d, receipt)
        request = {"modelId": mid, "to": OSCAR.address, "parent": 0, "inputCommitment": item_commitments(chained, view)[0],
                   "salt": salt, "proofURI": "", "count": 1, "metadata": [b"\x01" * 32],
                   "errorPpm": [0], "parentOutputs": []}
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenAlreadyMinted"):
            c.transact(d.token.functions.mint(request, encode_proofs(bundle), words, []), d.abi, account=OSCAR)
        alias = d.registration("0x" + bytes(mid).hex())["alias_of"]
        assert alias == [{"id": "0x" + owner_mid.hex(), "owner": c.address,
                          "same": ["ONNX hash", "vk hash", "verifier key"]}]


def test_segments_on_ezkls_reusable_verifier_mint_through_their_vkas(segmented, anvil, tmp_path):
    """Every segment through one reusable verifier, each with its VKA: the mint passes the three
    VKAs back to back; a VKA of the wrong segment is refused. (Another verifier contract is
    another inference space: the first inference mints here too, as SECURITY.md says.)"""
    ws = Workspace.resolve(tmp_path / "ws")
    spkg = segmented["compile"].package
    for cid in [spkg.circuit_id, *spkg.segments]:
        shutil.copytree(segmented["ws"].circuit_dir(cid), ws.circuit_dir(cid))
    dep = proofmint.deploy(spkg.circuit_id, reusable=True, rpc_url=anvil.url, workspace=ws)
    assert [s["kind"] for s in dep.segments] == ["reusable"] * 3
    assert len({s["address"] for s in dep.segments}) == 1  # one shared verifier, three VKAs
    bundle = load_any(segmented["bundle"])
    chained, view = statement_of(ws, bundle)
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        d = deployment(c)
        entry = d.entry(spkg.circuit_id)
        mid = bytes.fromhex(entry["model_id"][2:])
        vka = vka_for(view, entry)
        lengths = [len(verifier_artifact(p, reusable=True)["vka"]) for p in view.segments]
        assert len(vka) == sum(lengths) and all(lengths)
        words = chained.instance_words
        assert d.registry.functions.checkInference(mid, encode_proofs(bundle), words, vka).call()
        wrong = vka[lengths[0]:lengths[0] + lengths[1]] + vka[:lengths[0]] + vka[lengths[0] + lengths[1]:]
        assert not d.registry.functions.checkInference(mid, encode_proofs(bundle), words, wrong).call()
    m = proofmint.mint(segmented["bundle"], rpc_url=anvil.url, workspace=ws)
    per = [m.gas_used[f"verify_segment_{i}"] for i in range(3)]
    print(f"\nGAS segmented LeNet on the reusable verifier: verifyProof alone {', '.join(f'{g:,}' for g in per)}; "
          f"the one mint {m.gas_used['mint']:,}")
    assert proofmint.verify_asset(m.token_id, rpc_url=anvil.url, workspace=ws).valid
