"""The second trust audit's attacks (issue 27), each performed on anvil with real proofs by an
attacker on accounts of its own, and each token then checked by a third party: `proofmint
verify-asset` (or `show`) in an empty workspace, with only the RPC URL, a gateway and the
token address. Model substitution, a royalty redirect, a reveal taken by block stuffing, an
ERC-7007 verify() under an alias, `show` of a royalty paid to an account; and the three
aliases of a minted statement (a private-input layout, a forwarding contract, an ignored
VKA word)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from eth_account import Account
from onnx import numpy_helper

import proofmint
from proofmint import encoding
from proofmint.errors import TransactionRevertedError
from proofmint.models.onnx_model import load_onnx
from proofmint.prover import load_bundle
from proofmint.store import Workspace
from proofmint.verifier import toolchain
from proofmint.verifier.chain.anvil import Anvil
from proofmint.verifier.evm import CONTRACTS_SOLC, verifier_artifact, vka_digest, vka_words
from proofmint.verifier.chain.client import connect
from proofmint.verifier.content.gateway import Gateway
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.records import deployment

from ...conftest import run_cli
from .test_onchain import commit_by_hand, model_id
from .test_trust import _contracts, _mint_through, _model, _registration

# Attackers and owners of their own: accounts past anvil's funded ten, funded per test, so no
# registration here collides with another test's (one per registrant and circuit).
ACCOUNTS = [Account.from_key(k) for k in dev_keys(20)[10:20]]
BURNER = "0x635b6000566000526004601cf3"  # deploys JUMPDEST PUSH1 0 JUMP: a call burns all its gas
BASE_FEE = 10**9  # wei per gas when the attack starts: 1 gwei
FORWARDER = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
/// Passes every call on to the genuine verifier and returns its answer.
contract Forwarder {
    address private immutable target;
    constructor(address target_) { target = target_; }
    fallback(bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory answer) = target.staticcall(data);
        require(ok);
        return answer;
    }
}
"""


def _funded(c, *accounts):
    for a in accounts:
        c.w3.eth.send_transaction({"from": c.address, "to": a.address, "value": 10**20})
    return accounts


# The wine rows this file proves. On the session's chain a statement can be minted once, so they
# are rows no other test mints there (those mint 0-12 and 20-35); the stuffing tests (34, 35) run
# on a chain of their own, and model B (38 on) has its own verifier.
def _rows(zoo) -> list[list[float]]:
    calib = json.loads(open(zoo["mlp"].calibration).read())["input_data"][0]
    return [calib[13 * i:13 * i + 13] for i in range(len(calib) // 13)]


def _prove(circuit_id: str, row: list[float], ws, tmp_path: Path, name: str) -> Path:
    inp = tmp_path / f"{name}.input.json"
    inp.write_text(json.dumps({"input_data": [row]}))
    return proofmint.prove(circuit_id, input=inp, out=tmp_path / f"{name}.json", workspace=ws).bundles[0]


def _third_party(command: str, token_id: int, rpc: str, token: str, gateway_ws, tmp_path: Path) -> dict:
    """`proofmint COMMAND TOKEN --json` in an empty workspace of its own (another machine),
    given only the RPC URL, a gateway over ``gateway_ws`` and the token contract's address."""
    empty = tmp_path / f"third-party-{command}-{token_id}"
    with Gateway(Workspace.resolve(gateway_ws)) as g:
        r = run_cli(command, str(token_id), "--rpc-url", rpc, "--gateway", g.url, "--token", token,
                    "--workspace", empty, "--json")
    assert r.stdout.strip(), r.stderr
    out = json.loads(r.stdout)
    assert r.returncode == (0 if out.get("valid", True) else 1), r.stderr
    return out


def _failed(verdict: dict) -> set[str]:
    return {name for name, check in verdict["checks"].items() if not check["ok"]}


def _aliased(view: dict) -> set[str]:
    """What the registration shares with earlier registrations by other owners. Other tests
    register the same zoo circuits on the session's chain, so which registration came first
    depends on the order the suite runs in: the union is what each attack must show."""
    return {same for a in view["registration"]["alias_of"] for same in a["same"]}


# ---- 1. model substitution ----

def _swap_classes(zoo_dir: Path, dest: Path) -> Path:
    """The zoo MLP's folder with its model's output classes 0 and 2 swapped (last layer's rows)."""
    shutil.copytree(zoo_dir, dest)
    model = onnx.load(dest / "model.onnx")
    for init in model.graph.initializer:
        if init.name in ("net.2.weight", "net.2.bias"):
            values = numpy_helper.to_array(init).copy()
            values[[0, 2]] = values[[2, 0]]
            init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, dest / "model.onnx")
    return dest / "model.onnx"


def test_a_model_substitution_is_invalid_in_verify_asset(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve registers model B (the victim's MLP with classes 0 and 2 swapped) with B's genuine
    verifier, under the victim's ONNX hash and model URI, and mints B's answer on an input the
    victim's model calls class 0. Every hash verify-asset used to compare was consistent; now it
    compiles the registered model with the published settings and SRS and gets another key."""
    victim = circuits["mlp"].package
    b_onnx = _swap_classes(Path(zoo["mlp"].onnx).parent, tmp_path / "model-b")
    b = proofmint.compile(b_onnx, workspace=ws).package
    assert b.model_id != victim.model_id
    rows = _rows(zoo)
    row = next(r for r in rows[38:] if np.argmax(load_onnx(zoo["mlp"].onnx).run(np.array(r))[0]) == 0)
    bundle = load_bundle(_prove(b.circuit_id, row, ws, tmp_path, "b"))
    assert np.argmax(bundle.outputs[0]) == 2  # B's answer, which the token will claim is the victim's
    eve, = ACCOUNTS[0:1]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, eve)
        art = verifier_artifact(b)
        verifier = c.transact(c.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(),
                              art["abi"], account=eve)["contractAddress"]
        genuine = "0x" + model_id(ws, victim.circuit_id).hex()
        claimed = _registration(b, verifier, onnxHash=bytes.fromhex(victim.model_id),
                                modelURI=_model(c, bytes.fromhex(genuine[2:]))["modelURI"])
        token_id = _mint_through(c, registry, token, abi, eve, claimed, bundle, b, ws)
        assert c.w3.eth.get_code(verifier) and token.functions.ownerOf(token_id).call() == eve.address
    verdict = _third_party("verify-asset", token_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert not verdict["valid"]
    assert _failed(verdict) == {"circuit", "model compiles to the key", "re-run model"}, verdict["checks"]
    assert verdict["checks"]["model file"]["ok"] and verdict["checks"]["verifier code"]["ok"]  # B's own, genuine
    assert verdict["registration"]["owner"] == eve.address
    assert "ONNX hash" in _aliased(verdict)  # the victim registered that model first


# ---- 2. royalty redirect ----

LICENSE = {"commercialUse": True, "derivativesAllowed": True, "attributionRequired": True, "proverShareBps": 0}


def test_a_third_partys_license_cannot_take_a_models_royalty(deployed, circuits, zoo, ws, anvil, tmp_path):
    """Eve registers a model of her own whose license gives a parent 100 %, mints a parent
    token under it, then mints a genuine inference of the victim's model naming it. The
    victim's model never agreed to pay Eve's: refused. A model whose owner registered Eve's as
    its parent model did agree: its derivative pays her, and a third party finds it VALID."""
    pkg = circuits["mlp"].package
    rows = _rows(zoo)
    eve, carol = ACCOUNTS[1:3]
    parent, child, agreed = (load_bundle(_prove(pkg.circuit_id, rows[i], ws, tmp_path, f"r{i}")) for i in (13, 14, 15))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, eve, carol)
        eves = _registration(pkg, deployed["mlp"].verifier, license={**LICENSE, "parentShareBps": 10_000})
        parent_id = _mint_through(c, registry, token, abi, eve, eves, parent, pkg, ws)
        victim = model_id(ws, pkg.circuit_id)
        request, instances = commit_by_hand(c, token, abi, child, pkg, victim, account=eve, parent=parent_id)
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenParentShareNotAgreed"):
            c.transact(token.functions.mint(request, child.proof_bytes, instances, []), abi, account=eve)
        # Carol's model names Eve's as its parent model: her tokens' derivatives pay Eve's license.
        eve_model = registry.functions.modelIdOf(eve.address, eves["circuitHash"]).call()
        carols = _registration(pkg, deployed["mlp"].verifier, parentModel=eve_model,
                               license={**LICENSE, "parentShareBps": 0})
        c.transact(registry.functions.registerModel(carols, [], [carol.address], [10_000]), abi, account=carol)
        carol_model = registry.functions.modelIdOf(carol.address, carols["circuitHash"]).call()
        request, instances = commit_by_hand(c, token, abi, agreed, pkg, carol_model, account=eve, parent=parent_id)
        c.transact(token.functions.mint(request, agreed.proof_bytes, instances, []), abi, account=eve)
        child_id = token.functions.totalMinted().call()
        receiver, amount = token.functions.royaltyInfo(child_id, 10_000).call()
        assert receiver == eve.address and amount == _model(c, carol_model)["royaltyBps"]
    verdict = _third_party("verify-asset", child_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert verdict["valid"], verdict["checks"]
    assert verdict["registration"]["owner"] == carol.address


# ---- 3. a reveal taken by block stuffing ----

@dataclass
class Stuffing:
    """What an attacker paid to keep a victim's reveal out of blocks, and who got the token."""

    owner: str = ""
    token_id: int = 0
    gas: list[int] = field(default_factory=list)  # per stuffed block
    base_fees: list[int] = field(default_factory=list)  # wei per gas, per stuffed block
    burnt: int = 0  # wei: the base fee of every gas unit the attacker used
    tips: int = 0  # wei: what the attacker's priority fees paid the block builder


def _rpc(c, method: str, *params):
    return c.w3.provider.make_request(method, list(params))


def _send(c, account, tx: dict) -> bytes:
    tx = {"chainId": c.chain_id, "value": 0, **tx}
    return c.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def _seen_in_mempool(c, token, tx_hash: bytes) -> dict:
    """A pending transaction's mint arguments, as anyone watching the mempool reads them."""
    pending = [tx for txs in _rpc(c, "txpool_content")["result"]["pending"].values() for tx in txs.values()]
    tx = next(tx for tx in pending if tx["hash"] == "0x" + tx_hash.hex())
    return token.decode_function_input(tx["input"])[1]


def _stuff(c, d, bundle, pkg, attacker, blocks: int) -> Stuffing:
    """The victim (the chain's signer) commits and lets its commitment age, then reveals as
    `proofmint mint` does. With automine off, the attacker reads the reveal from the mempool,
    commits to it, and keeps the reveal out of ``blocks`` consecutive blocks by filling them
    with higher-tip transactions that burn all their gas; then it reveals first."""
    token, w3 = d.token, c.w3
    mid = bytes.fromhex(d.entry(pkg.circuit_id)["model_id"][2:])
    request, instances = commit_by_hand(c, token, d.abi, bundle, pkg, mid)
    burner = c.transact(w3.eth.contract(abi=[], bytecode=BURNER).constructor(), [], account=attacker)["contractAddress"]
    _rpc(c, "anvil_setNextBlockBaseFeePerGas", hex(BASE_FEE))  # a round figure to measure from
    reveal = token.functions.mint(request, bundle.proof_bytes, instances, [])
    gas = reveal.estimate_gas({"from": c.address}, block_identifier="pending")
    fees = c.fees(token.functions.minCommitAge().call())
    victim_tx = reveal.build_transaction({"from": c.address, "chainId": c.chain_id, "gas": gas + gas // 5,
                                          "nonce": w3.eth.get_transaction_count(c.address), **fees})
    limit = w3.eth.get_block("latest")["gasLimit"]
    high = {"maxFeePerGas": 10**12, "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"] + 1}  # outbids the victim
    nonce = w3.eth.get_transaction_count(attacker.address)
    out, commit_gas = Stuffing(), 100_000
    _rpc(c, "evm_setAutomine", False)
    try:
        victim_hash = w3.eth.send_raw_transaction(c.account.sign_transaction(victim_tx).raw_transaction)
        seen = _seen_in_mempool(c, token, victim_hash)
        salt = os.urandom(32)
        inference = token.functions.inferenceIdOf(seen["r"]["modelId"], seen["instances"]).call()
        commitment = token.functions.commitmentFor(attacker.address, inference, salt).call()
        sent = [_send(c, attacker, token.functions.commit(commitment).build_transaction(
            {"from": attacker.address, "gas": commit_gas, "nonce": nonce, **high}))]
        for i in range(blocks):
            sent.append(_send(c, attacker, {"to": burner, "data": b"", "nonce": nonce + 1 + i,
                                            "gas": limit - (commit_gas if i == 0 else 0), **high}))
            _rpc(c, "evm_mine")
            block = w3.eth.get_block("latest")
            assert victim_hash not in block["transactions"]  # kept out
            out.gas.append(block["gasUsed"])
            out.base_fees.append(block["baseFeePerGas"])
        for h in sent:
            receipt = w3.eth.get_transaction_receipt(h)
            base = w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
            out.burnt += receipt["gasUsed"] * base
            out.tips += receipt["gasUsed"] * (receipt["effectiveGasPrice"] - base)
        theirs = {**seen["r"], "to": attacker.address, "salt": salt}
        taken = token.functions.mint(theirs, seen["zkProof"], seen["instances"], seen["vka"])
        _send(c, attacker, taken.build_transaction({"from": attacker.address, "gas": victim_tx["gas"],
                                                    "nonce": nonce + 1 + blocks, **high}))
        _rpc(c, "evm_mine")
    finally:
        _rpc(c, "evm_setAutomine", True)
    out.token_id = token.functions.tokenOfInference(inference).call()
    out.owner = token.functions.ownerOf(out.token_id).call() if out.token_id else ""
    return out


@pytest.fixture
def own_chain(circuits, tmp_path):
    """A chain and a workspace of their own (automine is switched off here), the MLP deployed."""
    ws = Workspace.resolve(tmp_path / "ws")
    mlp = circuits["mlp"]
    shutil.copytree(Path(mlp.package.dir), ws.circuit_dir(mlp.circuit_id))
    with Anvil(tmp_path / "chain" / "anvil-state.json") as node:
        dep = proofmint.deploy(mlp.circuit_id, rpc_url=node.url, workspace=ws)
        yield node, ws, dep


def _stuffed(own_chain, circuits, zoo, tmp_path, row: int, attacker, blocks: int | None) -> tuple[Stuffing, int, str]:
    """The attack on a fresh inference (calibration row ``row``) with ``blocks`` stuffed blocks
    (None: as many as the commit age); returns it, the commit age and the victim's address."""
    node, ws, _ = own_chain
    pkg = circuits["mlp"].package
    bundle = load_bundle(_prove(pkg.circuit_id, _rows(zoo)[row], ws, tmp_path, f"stuffed{row}"))
    with connect(rpc_url=node.url, workspace=ws) as c:
        d = deployment(c)
        _funded(c, attacker)
        age = d.token.functions.minCommitAge().call()
        return _stuff(c, d, bundle, pkg, attacker, blocks=age if blocks is None else blocks), age, c.address


def test_a_reveal_cannot_be_taken_by_stuffing_one_block(own_chain, circuits, zoo, tmp_path):
    """The attack that took a reveal when a commitment needed one block: stuff the block after
    the victim's reveal was seen (the attacker's commit goes in it), reveal first in the next.
    Now the attacker's commitment is too young there, and the victim's reveal lands."""
    s, age, victim = _stuffed(own_chain, circuits, zoo, tmp_path, 34, ACCOUNTS[3], blocks=1)
    print(f"\nSTUFFING one block (the old commit age): {s.gas[0]:,} gas at base fee {s.base_fees[0]:,} wei, "
          f"{s.burnt / 1e18:.4f} ETH burnt + {s.tips / 1e18:.4f} ETH tips; commit age now {age} blocks")
    assert s.gas[0] >= 29_000_000 and s.base_fees[0] == BASE_FEE and age > 1
    assert s.owner == victim
    node, ws, dep = own_chain
    verdict = _third_party("verify-asset", s.token_id, node.url, dep.token, ws, tmp_path)
    assert verdict["valid"] and verdict["registration"]["owner"] == victim, verdict


def test_taking_a_reveal_now_means_stuffing_commit_age_full_blocks(own_chain, circuits, zoo, tmp_path):
    """The same attack with as many stuffed blocks as the commit age: it works, at the cost
    measured here (EIP-1559 raises the base fee 12.5 % for each full block), which SECURITY.md
    quotes; the victim's reveal carries a max fee that covers that rise, so it can't be priced out
    for less."""
    attacker = ACCOUNTS[4]
    s, age, _ = _stuffed(own_chain, circuits, zoo, tmp_path, 35, attacker, blocks=None)
    print(f"\nSTUFFING {age} blocks: {sum(s.gas):,} gas, base fee {s.base_fees[0]:,} -> {s.base_fees[-1]:,} wei, "
          f"{s.burnt / 1e18:.4f} ETH burnt + {s.tips / 1e18:.4f} ETH tips")
    assert s.owner == attacker.address and len(s.gas) == age
    assert all(g >= 29_000_000 for g in s.gas)
    assert all(b * 112 // 100 <= nxt for b, nxt in zip(s.base_fees, s.base_fees[1:]))  # +12.5 % a full block
    assert s.burnt >= age * s.gas[0] * BASE_FEE


# ---- 4. ERC-7007 verify() under an alias ----

def test_erc7007_verify_answers_only_for_the_registration_a_token_was_minted_under(
        deployed, circuits, zoo, ws, anvil, tmp_path):
    """An alias of the genuine verifier under another ONNX hash, which minted nothing: a
    prompt naming it doesn't verify the genuine token's proof."""
    pkg = circuits["mlp"].package
    minted = proofmint.mint(_prove(pkg.circuit_id, _rows(zoo)[16], ws, tmp_path, "v"), rpc_url=anvil.url, workspace=ws)
    rec = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=ws).record
    bundle = load_bundle(Workspace.resolve(ws).minted_bundle(rec["proofHash"], rec["inferenceId"]))
    mallory, = ACCOUNTS[5:6]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, mallory)
        alias = _registration(pkg, deployed["mlp"].verifier, onnxHash=b"\x33" * 32)
        c.transact(registry.functions.registerModel(alias, [], [mallory.address], [10_000]), abi, account=mallory)
        alias_id = registry.functions.modelIdOf(mallory.address, alias["circuitHash"]).call()
        outputs = b"".join(encoding.word(v) for v in pkg.layout.outputs_of(bundle.instance_words, 0))
        proof = encoding.aigc_proof(bundle.proof_bytes, bundle.instance_words, [], 0)
        commitment = bytes.fromhex(rec["inputCommitment"][2:])
        assert token.functions.verify(encoding.prompt(bytes.fromhex(rec["modelId"][2:]), commitment),
                                      outputs, proof).call() is True
        assert token.functions.verify(encoding.prompt(alias_id, commitment), outputs, proof).call() is False
    verdict = _third_party("verify-asset", minted.token_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert verdict["valid"] and verdict["checks"]["on-chain verify"]["ok"], verdict["checks"]


# ---- 5. show of a royalty paid to an account ----

def test_show_handles_a_royalty_paid_to_an_account(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A license that gives a parent's creator the whole royalty (`--parent-share-bps 10000`):
    a derivative of the model's own token pays an account, not a split, and `show` (the
    explorer's code too) says so."""
    pkg = circuits["mlp"].package
    owner, = ACCOUNTS[6:7]
    parent, child = (load_bundle(_prove(pkg.circuit_id, _rows(zoo)[i], ws, tmp_path, f"s{i}")) for i in (17, 18))
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, owner)
        whole = _registration(pkg, deployed["mlp"].verifier, license={**LICENSE, "parentShareBps": 10_000})
        parent_id = _mint_through(c, registry, token, abi, owner, whole, parent, pkg, ws)
        mid = registry.functions.modelIdOf(owner.address, whole["circuitHash"]).call()
        request, instances = commit_by_hand(c, token, abi, child, pkg, mid, account=owner, parent=parent_id)
        c.transact(token.functions.mint(request, child.proof_bytes, instances, []), abi, account=owner)
        child_id = token.functions.totalMinted().call()
    shown = _third_party("show", child_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert shown["royalty"] == {"receiver": owner.address, "bps": 500, "split": []}
    assert shown["registration"]["owner"] == owner.address
    assert proofmint.show(child_id, rpc_url=anvil.url, workspace=ws).royalty["split"] == []


# ---- the three aliases of a minted statement ----

def _minted_statement(zoo, circuits, ws, anvil, tmp_path, row: int):
    """A genuine token of the session's MLP registration; its bundle as anyone reads it from the chain."""
    pkg = circuits["mlp"].package
    minted = proofmint.mint(_prove(pkg.circuit_id, _rows(zoo)[row], ws, tmp_path, f"m{row}"), rpc_url=anvil.url,
                            workspace=ws)
    rec = proofmint.show(minted.token_id, rpc_url=anvil.url, workspace=ws).record
    return minted, load_bundle(Workspace.resolve(ws).minted_bundle(rec["proofHash"], rec["inferenceId"]))


def test_an_alias_with_a_private_input_layout_cannot_mint_a_statement_again(
        deployed, circuits, zoo, ws, anvil, tmp_path):
    """The genuine verifier registered with the inputs declared private: the replay key used to
    take the proof's hash for a private layout, so the minted statement was new to it."""
    pkg = circuits["mlp"].package
    _, bundle = _minted_statement(zoo, circuits, ws, anvil, tmp_path, 19)
    trudy, = ACCOUNTS[7:8]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, trudy)
        private = _registration(pkg, deployed["mlp"].verifier, inputCount=0, inputHashed=False)
        c.transact(registry.functions.registerModel(private, [], [trudy.address], [10_000]), abi, account=trudy)
        alias = registry.functions.modelIdOf(trudy.address, private["circuitHash"]).call()
        request, instances = commit_by_hand(c, token, abi, bundle, pkg, alias, account=trudy)
        request["inputCommitment"] = encoding.PRIVATE_INPUT_COMMITMENT
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenAlreadyMinted"):
            c.transact(token.functions.mint(request, bundle.proof_bytes, instances, []), abi, account=trudy)


def test_an_alias_through_a_forwarding_contract_is_flagged(deployed, circuits, zoo, ws, anvil, tmp_path):
    """A contract that passes calls on to the genuine verifier is other code: the chain keys the
    statement by it and mints it again. `show` and verify-asset flag the alias (the first
    registration of the same hashes is another owner's), and verify-asset refuses its code."""
    pkg = circuits["mlp"].package
    _, bundle = _minted_statement(zoo, circuits, ws, anvil, tmp_path, 36)
    fred, = ACCOUNTS[8:9]
    built = toolchain.compile_standard_json({"Forwarder.sol": FORWARDER}, CONTRACTS_SOLC)["contracts"]["Forwarder.sol"]
    fwd = built["Forwarder"]
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, fred)
        forwarder = c.transact(c.w3.eth.contract(abi=fwd["abi"], bytecode=fwd["evm"]["bytecode"]["object"])
                               .constructor(deployed["mlp"].verifier), fwd["abi"], account=fred)["contractAddress"]
        token_id = _mint_through(c, registry, token, abi, fred, _registration(pkg, forwarder), bundle, pkg, ws)
    shown = _third_party("show", token_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert shown["registration"]["owner"] == fred.address
    assert _aliased(shown) >= {"circuit hash", "ONNX hash", "vk hash"}
    verdict = _third_party("verify-asset", token_id, anvil.url, deployed["mlp"].token, ws, tmp_path)
    assert not verdict["valid"] and _failed(verdict) == {"verifier code"}, verdict["checks"]
    assert _aliased(verdict) >= {"circuit hash", "ONNX hash", "vk hash"}


def test_an_alias_with_an_ignored_vka_word_changed_cannot_mint_a_statement_again(
        deployed, circuits, zoo, ws, anvil, tmp_path):
    """ezkl's reusable verifier ignores VKA word 11 (an accumulator's offset, in a circuit with
    no accumulator): a VKA with it changed still verifies the genuine proofs, under another
    digest. The key takes the verifying key's digest (word 0), so it is the same key. The
    reusable verifier itself is other code than the dedicated one the statement was first
    minted through: that alias the chain can't see, and `show` flags."""
    pkg = circuits["mlp"].package
    art = verifier_artifact(pkg, reusable=True)
    genuine_vka = vka_words(art)
    altered = list(genuine_vka)
    altered[11] = (int.from_bytes(altered[11], "big") ^ 0x40).to_bytes(32, "big")
    victor, trudy = ACCOUNTS[9], Account.from_key(dev_keys(21)[20])
    _, bundle = _minted_statement(zoo, circuits, ws, anvil, tmp_path, 37)  # through the dedicated verifier
    with connect(rpc_url=anvil.url, workspace=ws) as c:
        registry, token, abi = _contracts(c, deployed["mlp"])
        _funded(c, victor, trudy)
        reusable = c.transact(c.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(),
                              art["abi"], account=victor)["contractAddress"]
        verifier = c.w3.eth.contract(address=reusable, abi=art["abi"])
        mids = []
        for who, vka in ((victor, genuine_vka), (trudy, altered)):
            c.transact(verifier.functions.registerVka(vka), art["abi"], account=who)
            reg = _registration(pkg, reusable, vkaDigest=vka_digest(["0x" + w.hex() for w in vka]))
            c.transact(registry.functions.registerModel(reg, vka, [who.address], [10_000]), abi, account=who)
            mids.append(registry.functions.modelIdOf(who.address, reg["circuitHash"]).call())
            assert registry.functions.checkInference(mids[-1], bundle.proof_bytes, bundle.instance_words, vka).call()
        assert _model(c, mids[0])["vkaDigest"] != _model(c, mids[1])["vkaDigest"]
        request, instances = commit_by_hand(c, token, abi, bundle, pkg, mids[0], account=victor)
        c.transact(token.functions.mint(request, bundle.proof_bytes, instances, genuine_vka), abi, account=victor)
        victors = token.functions.totalMinted().call()
        request, instances = commit_by_hand(c, token, abi, bundle, pkg, mids[1], account=trudy)
        with pytest.raises(TransactionRevertedError, match="ProvenanceTokenAlreadyMinted"):
            c.transact(token.functions.mint(request, bundle.proof_bytes, instances, altered), abi, account=trudy)
    shown = proofmint.show(victors, rpc_url=anvil.url, workspace=ws).to_dict()
    assert "circuit hash" in _aliased(shown)
