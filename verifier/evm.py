"""``proofmint deploy``: the EZKL Solidity verifier of a circuit, our contracts, model registration.

Addresses are recorded per chain id in ``chains/<id>/deployments.json``; a recorded contract
whose code is gone (a chain reset) is deployed again, and a second deploy of the same circuit
on the same chain is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    verifier_kind: str  # "dedicated" or "reusable"
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
    built: dict = {"digest": digest}
    for name in ("ModelRegistry", "ProvenanceToken"):
        c = out["contracts"][f"{name}.sol"][name]
        built[name] = {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}
    atomic_write_json(cache, built)
    return built


def _render_job(vk: str, settings: str, srs: str, sol: str, abi: str, vka: str | None) -> bool:
    """In a child: ezkl renders (and checks with solc) the verifier, and for a reusable one its
    VKA. ezkl's async calls need a running loop even to be called, and its exit may abort."""
    import ezkl

    toolchain.ensure_ezkl_solc()

    async def render():
        async def wait(res):
            return await res if inspect.isawaitable(res) else res

        ok = await wait(ezkl.create_evm_verifier(vk_path=vk, settings_path=settings, sol_code_path=sol,
                                                 abi_path=abi, srs_path=srs, reusable=vka is not None))
        if ok and vka is not None:
            ok = await wait(ezkl.create_evm_vka(vk_path=vk, settings_path=settings, vka_path=vka,
                                                srs_path=srs))
        return ok

    return bool(asyncio.run(render()))


def read_vka(path: Path) -> list[str]:
    """ezkl's VKA file: a little-endian u64 word count, then 32-byte words."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    if len(data) != 8 + 32 * n:
        raise ProvingError(f"VKA file {path} is malformed ({len(data)} bytes for {n} words)")
    return ["0x" + data[8 + 32 * i: 40 + 32 * i].hex() for i in range(n)]


def verifier_artifact(pkg: CircuitPackage, reusable: bool = False) -> dict:
    """The circuit's verifier, rendered by ezkl and compiled with solc 0.8.20 (cached).

    ``reusable``: ezkl's shared verifier plus this circuit's VKA (verifying-key artifact).
    """
    kind = "reusable" if reusable else "dedicated"
    art_path = pkg.path / f"verifier-{kind}-v2.json"  # v2: with the runtime code
    if art_path.is_file():
        return read_json(art_path)
    sol = pkg.path / f"Verifier-{kind}.sol"
    with progress.step(f"render EZKL verifier ({kind})"), contextlib.ExitStack() as stack:
        tmp_sol = stack.enter_context(staged(sol))
        tmp_abi = stack.enter_context(staged(pkg.path / f"verifier-{kind}.abi"))
        tmp_vka = stack.enter_context(staged(pkg.path / "vka.bytes")) if reusable else None
        ok = run_in_child(_render_job, str(pkg.vk), str(pkg.settings), pkg.srs_path, str(tmp_sol),
                          str(tmp_abi), str(tmp_vka) if tmp_vka else None, what="create_evm_verifier")
        if not ok:
            raise ProvingError("ezkl create_evm_verifier returned false")
        vka = read_vka(tmp_vka) if tmp_vka else []
    with progress.step("compile verifier (solc 0.8.20)"):
        source = sol.read_text()
        out = toolchain.compile_standard_json({"Verifier.sol": source}, toolchain.EZKL_SOLC)
    (name, c), = out["contracts"]["Verifier.sol"].items()
    art = {"name": name, "kind": kind, "abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
           "runtime": "0x" + c["evm"]["deployedBytecode"]["object"],
           "runtime_bytes": len(c["evm"]["deployedBytecode"]["object"]) // 2,
           "source_sha256": sha256_bytes(source.encode()), "vka": vka}
    atomic_write_json(art_path, art)
    return art


def _has_code(c: chain_mod.Chain, address: str | None) -> bool:
    return bool(address) and len(c.w3.eth.get_code(address)) > 0


def ensure_core(c: chain_mod.Chain, built: dict) -> tuple[dict, dict]:
    """Registry and token on this chain, deployed once per contracts version; returns the
    deployments record and the gas used. Tokens minted by an older version stay on its contracts."""
    path = c.records("deployments.json")
    dep = read_json(path) if path.is_file() else {"verifiers": {}}
    gas = {}
    current = dep.get("contracts_digest") == built["digest"]
    if not current or not _has_code(c, dep.get("registry")) or not _has_code(c, dep.get("token")):
        with progress.step("deploy ModelRegistry + ProvenanceToken"):
            reg, r1 = c.deploy_contract(built["ModelRegistry"]["abi"], built["ModelRegistry"]["bytecode"])
            tok, r2 = c.deploy_contract(built["ProvenanceToken"]["abi"],
                                        built["ProvenanceToken"]["bytecode"], reg)
        dep = {"chain_id": c.chain_id, "contracts_digest": built["digest"], "registry": reg,
               "token": tok, "verifiers": {}, "reusable_verifiers": dep.get("reusable_verifiers", {})}
        gas = {"deploy_registry": r1["gasUsed"], "deploy_token": r2["gasUsed"]}
        atomic_write_json(path, dep)
    return dep, gas


def vka_digest(words: list[str]) -> bytes:
    from eth_utils import keccak

    return keccak(b"".join(bytes.fromhex(w[2:]) for w in words)) if words else bytes(32)


def _deploy_verifier(c: chain_mod.Chain, dep: dict, art: dict, gas: dict) -> str:
    """A dedicated verifier per circuit; a reusable one once per chain (per source), plus the VKA."""
    if art["kind"] == "dedicated":
        with progress.step("deploy verifier"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas["deploy_verifier"] = receipt["gasUsed"]
        return addr
    shared = dep.setdefault("reusable_verifiers", {})
    addr = shared.get(art["source_sha256"])
    if not _has_code(c, addr):
        with progress.step("deploy reusable verifier"):
            addr, receipt = c.deploy_contract(art["abi"], art["bytecode"])
        gas["deploy_reusable_verifier"] = receipt["gasUsed"]
        shared[art["source_sha256"]] = addr
    verifier = c.w3.eth.contract(address=addr, abi=art["abi"])
    with progress.step("register VKA"):
        receipt = c.transact(verifier.functions.registerVka([bytes.fromhex(w[2:]) for w in art["vka"]]),
                             art["abi"])
    gas["register_vka"] = receipt["gasUsed"]
    return addr


def deploy(circuit: str, reusable: bool = False, royalty_bps: int = DEFAULT_ROYALTY_BPS,
           metadata_uri: str = "", license_uri: str = "", rpc_url: str | None = None,
           workspace: str | Path | None = None) -> DeployResult:
    """Deploy the circuit's verifier and register the model; a repeat is a no-op.

    A verifier over the 24,576-byte contract limit (or ``reusable=True``) goes through ezkl's
    reusable verifier, shared by every circuit on the chain, with this circuit's VKA.
    """
    ws = Workspace.resolve(workspace)
    pkg = package_mod.load(ws, circuit)
    art = verifier_artifact(pkg)
    if reusable or art["runtime_bytes"] > MAX_RUNTIME_BYTES:
        if not reusable:
            progress.note(f"the dedicated verifier is {art['runtime_bytes']} bytes, over the "
                          f"{MAX_RUNTIME_BYTES}-byte limit: using ezkl's reusable verifier + VKA")
        art = verifier_artifact(pkg, reusable=True)
        if art["runtime_bytes"] > MAX_RUNTIME_BYTES:
            raise ChainError(f"even ezkl's reusable verifier is {art['runtime_bytes']} bytes, over "
                             f"the {MAX_RUNTIME_BYTES}-byte limit of most chains")
    built = build_contracts(ws)
    with chain_mod.connect(rpc_url, ws.root) as c:
        dep, gas = ensure_core(c, built)
        entry = dep["verifiers"].get(pkg.circuit_id)
        registry = c.w3.eth.contract(address=dep["registry"], abi=built["ModelRegistry"]["abi"])
        circuit_hash = bytes.fromhex(pkg.circuit_id)
        model_id = registry.functions.modelIdOf(c.address, circuit_hash).call()
        already = bool(entry) and _has_code(c, entry["address"]) and \
            registry.functions.isRegistered(model_id).call()
        if not already:
            addr = _deploy_verifier(c, dep, art, gas)
            with progress.step("register model"):
                receipt = c.transact(registry.functions.registerModel(
                    registration(pkg, addr, art, royalty_bps, metadata_uri, license_uri)),
                    built["ModelRegistry"]["abi"])
            gas["register_model"] = receipt["gasUsed"]
            dep["verifiers"][pkg.circuit_id] = {
                "address": addr, "kind": art["kind"], "runtime_bytes": art["runtime_bytes"],
                "vka_digest": "0x" + vka_digest(art["vka"]).hex(), "owner": c.address,
                "royalty_bps": royalty_bps, "model_id": "0x" + bytes(model_id).hex()}
            atomic_write_json(c.records("deployments.json"), dep)
        entry = dep["verifiers"][pkg.circuit_id]
        return DeployResult(pkg.circuit_id, c.chain_id, entry["address"], dep["registry"], dep["token"],
                            entry["runtime_bytes"], entry.get("kind", "dedicated"), already, gas)


def registration(pkg: CircuitPackage, verifier: str, art: dict, royalty_bps: int = DEFAULT_ROYALTY_BPS,
                 metadata_uri: str = "", license_uri: str = "") -> tuple:
    """The registry's Registration for a circuit: every field derived from its artifacts."""
    layout = pkg.instance_layout()
    return (bytes.fromhex(pkg.circuit_id), bytes.fromhex(pkg.model_id),
            bytes.fromhex(sha256_bytes(pkg.vk.read_bytes())), verifier, royalty_bps,
            layout["batchSize"], layout["inputStart"], layout["inputCount"], layout["outputStart"],
            layout["outputCount"], pkg.instance_count(), layout["inputHashed"], vka_digest(art["vka"]),
            metadata_uri, license_uri)


def vka_for(pkg: CircuitPackage, entry: dict) -> list[bytes]:
    """The VKA words a mint must pass for this deployment (none for a dedicated verifier)."""
    if entry.get("kind") != "reusable":
        return []
    return [bytes.fromhex(w[2:]) for w in verifier_artifact(pkg, reusable=True)["vka"]]
