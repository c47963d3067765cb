"""``proofmint deploy``: the EZKL Solidity verifier of a circuit, our contracts, model registration.

Addresses are recorded per chain id in ``chains/<id>/deployments.json``; a recorded contract
whose code is gone (a chain reset) is deployed again, and a second deploy of the same circuit
on the same chain is a no-op.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from proofmint import progress
from proofmint.circuits import package as package_mod
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ChainError, ProvingError
from proofmint.jobs import run_in_child
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_bytes, staged

from . import chain as chain_mod
from . import toolchain

CONTRACT_SOURCES = ("ModelRegistry.sol", "ProvenanceToken.sol")
MAX_RUNTIME_BYTES = 24_576  # EIP-170
DEFAULT_ROYALTY_BPS = 500


@dataclass
class DeployResult:
    circuit_id: str
    chain_id: int
    verifier: str
    registry: str
    token: str
    verifier_runtime_bytes: int
    already_deployed: bool
    gas: dict

    def to_dict(self) -> dict:
        return asdict(self)


def contracts_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "contracts"


def build_contracts(ws: Workspace) -> dict:
    """ABI and bytecode of our contracts, compiled once per source version and cached."""
    sources = {n: (contracts_dir() / n).read_text() for n in CONTRACT_SOURCES}
    digest = sha256_bytes(json.dumps(sources, sort_keys=True).encode())[:16]
    cache = ws.path("build", f"contracts-{digest}.json")
    if cache.is_file():
        return read_json(cache)
    with progress.step("compile contracts (solc 0.8.37)"):
        out = toolchain.compile_standard_json(sources, "0.8.37", via_ir=True)
    built = {}
    for name in ("ModelRegistry", "ProvenanceToken"):
        c = out["contracts"][f"{name}.sol"][name]
        built[name] = {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}
    atomic_write_json(cache, built)
    return built


def _render_job(vk: str, settings: str, srs: str, sol: str, abi: str) -> bool:
    """In a child: ezkl renders (and checks with solc) the verifier; its exit may abort."""
    import ezkl

    toolchain.ensure_ezkl_solc()

    async def render():  # ezkl's async calls need a running loop even to be called
        res = ezkl.create_evm_verifier(vk_path=vk, settings_path=settings, sol_code_path=sol,
                                       abi_path=abi, srs_path=srs)
        return await res if inspect.isawaitable(res) else res

    res = asyncio.run(render())
    return bool(res)


def verifier_artifact(pkg: CircuitPackage) -> dict:
    """The circuit's verifier: Solidity rendered by ezkl, compiled with solc 0.8.20 (cached)."""
    art_path = pkg.path / "verifier.json"
    if art_path.is_file():
        return read_json(art_path)
    sol = pkg.path / "Verifier.sol"
    with progress.step("render EZKL verifier"):
        with staged(sol) as tmp_sol, staged(pkg.path / "verifier.abi") as tmp_abi:
            ok = run_in_child(_render_job, str(pkg.vk), str(pkg.settings), pkg.srs_path,
                              str(tmp_sol), str(tmp_abi), what="create_evm_verifier")
            if not ok:
                raise ProvingError("ezkl create_evm_verifier returned false")
    with progress.step("compile verifier (solc 0.8.20)"):
        out = toolchain.compile_standard_json({"Verifier.sol": sol.read_text()}, toolchain.EZKL_SOLC)
    (name, c), = out["contracts"]["Verifier.sol"].items()
    art = {"name": name, "abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
           "runtime_bytes": len(c["evm"]["deployedBytecode"]["object"]) // 2}
    atomic_write_json(art_path, art)
    return art


def instance_layout(pkg: CircuitPackage) -> dict:
    """Where inputs and outputs sit among the public instances (ezkl's order: input hashes,
    param hash, public inputs, public outputs or their hash)."""
    n_in = 1
    for d in pkg.input_shape:
        n_in *= d
    n_out = sum(_prod(s) for s in pkg.output_shapes)
    vis = pkg.visibility
    pos = 0
    if vis["input"] == "hashed":
        inp = (0, 1)
        pos = 1
    else:
        inp = None
    if vis["param"] == "hashed":
        pos += 1
    if vis["input"] == "public":
        inp = (pos, n_in)
        pos += n_in
    if inp is None:  # private input: nothing to commit to
        inp = (pos, 0)
    out = (pos, n_out if vis["output"] == "public" else 1)
    return {"inputStart": inp[0], "inputCount": inp[1], "outputStart": out[0],
            "outputCount": out[1], "inputHashed": vis["input"] == "hashed"}


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _has_code(c: chain_mod.Chain, address: str | None) -> bool:
    return bool(address) and len(c.w3.eth.get_code(address)) > 0


def ensure_core(c: chain_mod.Chain, built: dict) -> tuple[dict, dict]:
    """Registry and token on this chain (deployed once); returns deployments and gas used."""
    path = c.records("deployments.json")
    dep = read_json(path) if path.is_file() else {"verifiers": {}}
    gas = {}
    if not _has_code(c, dep.get("registry")) or not _has_code(c, dep.get("token")):
        with progress.step("deploy ModelRegistry + ProvenanceToken"):
            reg, r1 = c.deploy_contract(built["ModelRegistry"]["abi"], built["ModelRegistry"]["bytecode"])
            tok, r2 = c.deploy_contract(built["ProvenanceToken"]["abi"],
                                        built["ProvenanceToken"]["bytecode"], reg)
        dep = {"chain_id": c.chain_id, "registry": reg, "token": tok, "verifiers": {}}
        gas = {"deploy_registry": r1["gasUsed"], "deploy_token": r2["gasUsed"]}
        atomic_write_json(path, dep)
    return dep, gas


def deploy(circuit: str, royalty_bps: int = DEFAULT_ROYALTY_BPS, metadata_uri: str = "",
           license_uri: str = "", rpc_url: str | None = None,
           workspace: str | Path | None = None) -> DeployResult:
    """Deploy the circuit's verifier and register the model; a repeat is a no-op."""
    ws = Workspace.resolve(workspace)
    pkg = package_mod.load(ws, circuit)
    art = verifier_artifact(pkg)
    if art["runtime_bytes"] > MAX_RUNTIME_BYTES:
        raise ChainError(
            f"the verifier of circuit {pkg.circuit_id[:16]} is {art['runtime_bytes']} bytes of "
            f"runtime code, over the {MAX_RUNTIME_BYTES}-byte contract limit; ezkl's reusable "
            "verifier + VKA path is not wired up in this version — compile with "
            "--input-visibility hashed to shrink the instance count"
        )
    built = build_contracts(ws)
    with chain_mod.connect(rpc_url, ws.root) as c:
        dep, gas = ensure_core(c, built)
        entry = dep["verifiers"].get(pkg.circuit_id)
        registry = c.w3.eth.contract(address=dep["registry"], abi=built["ModelRegistry"]["abi"])
        circuit_hash = bytes.fromhex(pkg.circuit_id)
        already = bool(entry) and _has_code(c, entry["address"]) and \
            registry.functions.isRegistered(circuit_hash).call()
        if not already:
            with progress.step("deploy verifier"):
                addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
            gas["deploy_verifier"] = receipt["gasUsed"]
            layout = instance_layout(pkg)
            reg = (circuit_hash, bytes.fromhex(pkg.model_id),
                   bytes.fromhex(sha256_bytes(pkg.vk.read_bytes())), addr, royalty_bps,
                   layout["inputStart"], layout["inputCount"], layout["outputStart"],
                   layout["outputCount"], layout["inputHashed"], metadata_uri, license_uri)
            with progress.step("register model"):
                receipt = c.transact(registry.functions.registerModel(reg), built["ModelRegistry"]["abi"])
            gas["register_model"] = receipt["gasUsed"]
            dep["verifiers"][pkg.circuit_id] = {"address": addr, "runtime_bytes": art["runtime_bytes"],
                                                "owner": c.address, "royalty_bps": royalty_bps}
            atomic_write_json(c.records("deployments.json"), dep)
        return DeployResult(pkg.circuit_id, c.chain_id, dep["verifiers"][pkg.circuit_id]["address"],
                            dep["registry"], dep["token"], art["runtime_bytes"], already, gas)
