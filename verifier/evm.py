"""Build artifacts for the chain: our contracts (solc 0.8.37) and each circuit's EZKL verifier
(rendered by ezkl, compiled with solc 0.8.20), cached once per source; and a circuit's verifying
key re-derived from a model file, to check which model a published circuit was compiled from."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from eth_utils import keccak

from proofmint import ezkl_layer, progress
from proofmint.circuits import batching, rewrite
from proofmint.circuits.package import CircuitPackage
from proofmint.errors import ProvingError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import load_onnx
from proofmint.store import Workspace, atomic_write_json, read_json, sha256_bytes, sha256_file, staged

from proofmint.verifier import toolchain

CONTRACT_SOURCES = ("ModelRegistry.sol", "ProvenanceToken.sol", "RoyaltySplit.sol")
CONTRACTS_SOLC = "0.8.37"


def contracts_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "contracts"


def build_contracts(ws: Workspace) -> dict:
    """ABI and bytecode of our contracts, compiled once per source version and cached."""
    sources = {n: (contracts_dir() / n).read_text() for n in CONTRACT_SOURCES}
    digest = sha256_bytes(json.dumps(sources, sort_keys=True).encode())[:16]
    cache = ws.contracts_build(digest)
    if cache.is_file():
        return read_json(cache)
    with progress.step(f"compile contracts (solc {CONTRACTS_SOLC})"):
        out = toolchain.compile_standard_json(sources, CONTRACTS_SOLC, via_ir=True)
    built: dict = {"digest": digest}
    for name in ("ModelRegistry", "ProvenanceToken", "RoyaltySplit"):
        c = out["contracts"][f"{name}.sol"][name]
        built[name] = {"abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"]}
    atomic_write_json(cache, built)
    return built


def read_vka(path: Path) -> list[str]:
    """ezkl's VKA file: a little-endian u64 word count, then 32-byte words."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    if len(data) != 8 + 32 * n:
        raise ProvingError(f"VKA file {path} is malformed ({len(data)} bytes for {n} words)")
    return ["0x" + data[8 + 32 * i: 40 + 32 * i].hex() for i in range(n)]


def vka_digest(words: list[str]) -> bytes:
    """The registry's ``vkaDigest``: keccak256 of the VKA words packed (zero for none)."""
    return keccak(b"".join(bytes.fromhex(w[2:]) for w in words)) if words else bytes(32)


def vka_words(art: dict) -> list[bytes]:
    """The VKA a call to a reusable verifier passes (none for a dedicated one)."""
    return [bytes.fromhex(w[2:]) for w in art["vka"]]


def verifier_artifact(pkg: CircuitPackage, *, reusable: bool = False) -> dict:
    """The circuit's verifier, rendered by ezkl and compiled with solc 0.8.20 (cached).

    ``reusable``: ezkl's shared verifier plus this circuit's VKA (verifying-key artifact).
    """
    kind = "reusable" if reusable else "dedicated"
    art_path = pkg.path / f"verifier-{kind}-v2.json"  # v2: with the runtime code
    if art_path.is_file():
        return read_json(art_path)
    sol = pkg.path / f"Verifier-{kind}.sol"
    toolchain.ensure_ezkl_solc()  # ezkl checks the rendered source with the solc at svm's path
    with progress.step(f"render EZKL verifier ({kind})"), contextlib.ExitStack() as stack:
        tmp_sol = stack.enter_context(staged(sol))
        tmp_abi = stack.enter_context(staged(pkg.path / f"verifier-{kind}.abi"))
        tmp_vka = stack.enter_context(staged(pkg.path / "vka.bytes")) if reusable else None
        ok = run_in_child(ezkl_layer.render_verifier, vk=pkg.vk, settings=pkg.settings, srs=pkg.srs,
                          sol=tmp_sol, abi=tmp_abi, vka=tmp_vka, what="create_evm_verifier")
        if not ok:
            raise ProvingError("ezkl create_evm_verifier returned false")
        vka = read_vka(tmp_vka) if tmp_vka else []
    with progress.step(f"compile verifier (solc {toolchain.EZKL_SOLC})"):
        source = sol.read_text()
        out = toolchain.compile_standard_json({"Verifier.sol": source}, toolchain.EZKL_SOLC)
    (name, c), = out["contracts"]["Verifier.sol"].items()
    art = {"name": name, "kind": kind, "abi": c["abi"], "bytecode": "0x" + c["evm"]["bytecode"]["object"],
           "runtime": "0x" + c["evm"]["deployedBytecode"]["object"],
           "runtime_bytes": len(c["evm"]["deployedBytecode"]["object"]) // 2,
           "source_sha256": sha256_bytes(source.encode()), "vka": vka}
    atomic_write_json(art_path, art)
    return art


def derived_vk(pkg: CircuitPackage, onnx: Path) -> str:
    """sha256 of the verifying key ``onnx`` compiles to under the package's settings and SRS.

    ezkl's compile_circuit and setup are deterministic, so this binds a model file to a
    circuit's key: a package names its model, but whoever published it wrote that name. The
    graph is built as compile builds it (rewrites, with the constants compile chose from its
    samples, as its report records them; a side-by-side batch). Cached in the package folder by
    the digests of the three inputs."""
    report = pkg.calibration_report.rewrites if pkg.calibration_report else None
    only = rewrite.recorded(report)
    inputs = {"onnx": sha256_file(onnx), "settings": sha256_file(pkg.settings), "srs": sha256_file(pkg.srs),
              "chosen": rewrite.chosen_constants(report or []),
              "only": sorted(map(list, only)) if only is not None else None}
    cache = pkg.path / "derived-vk.json"
    if cache.is_file() and read_json(cache).get("inputs") == inputs:
        return read_json(cache)["vk_sha256"]
    with progress.step("re-derive the verifying key from the model (compile_circuit + setup)"):
        vk = run_in_child(_derive_vk, str(onnx), str(pkg.settings), str(pkg.srs), pkg.batch_size, report,
                          what="compile_circuit + setup")
    atomic_write_json(cache, {"inputs": inputs, "vk_sha256": vk})
    return vk


def _derive_vk(onnx: str, settings: str, srs: str, batch: int, rewrites: list[dict] | None) -> str:
    with tempfile.TemporaryDirectory(prefix="proofmint-derive-") as tmp:
        work = Path(tmp)
        graph = rewrite.replay(load_onnx(onnx), work / "rewritten.onnx", rewrites)
        if batch > 1 and graph.batch_axis is None:
            graph = load_onnx(batching.side_by_side(graph, batch, work / "circuit.onnx"))
        ezkl_layer.compile_circuit(graph.path, work / "model.compiled", Path(settings))
        ezkl_layer.setup(work / "model.compiled", work / "vk.key", work / "pk.key", Path(srs))
        return sha256_file(work / "vk.key")
