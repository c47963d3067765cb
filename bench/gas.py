"""On-chain gas on the embedded anvil: verifyProof alone and a full mint, public vs hashed inputs.

    .venv/bin/python bench/gas.py [--workspace DIR] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from proofmint.circuits.compile import compile as compile_model
from proofmint.models import export
from proofmint.prover import load_bundle, prove
from proofmint.verifier import asset, evm
from proofmint.verifier.chain import connect

CASES = (("mlp", "public"), ("mlp", "hashed"), ("lenet", "public"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="proofmint-gas-"))
    ws = Path(args.workspace) if args.workspace else root / "ws"
    rows = []
    for name, vis in CASES:
        e = export(name, root / name)
        c = compile_model(e.onnx, input_visibility=vis, workspace=ws)
        bundle_path = prove(c.circuit_id, e.input, root / f"{name}-{vis}.json", workspace=ws).bundles[0]
        d = evm.deploy(c.circuit_id, workspace=ws)
        bundle = load_bundle(bundle_path)
        art = evm.verifier_artifact(c.package, reusable=d.verifier_kind == "reusable")
        with connect(workspace=ws) as chain:
            verifier = chain.w3.eth.contract(address=d.verifier, abi=art["abi"])
            args_ = [bytes(bundle.ezkl_proof["proof"]), asset.evm_instances(bundle)]
            if d.verifier_kind == "reusable":
                args_.append(evm.vka_for(c.package, {"kind": "reusable"}))
            verify_gas = verifier.functions.verifyProof(*args_).estimate_gas()
        m = asset.mint(bundle_path, workspace=ws)
        rows.append({"model": name, "input": vis, "instances": len(bundle.instances),
                     "verifier": d.verifier_kind, "verifier_runtime_bytes": d.verifier_runtime_bytes,
                     "verify_gas": verify_gas, "mint_gas": m.gas_used["mint"],
                     "commit_gas": m.gas_used["commit"]})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gas.json").write_text(json.dumps(rows, indent=2))
    lines = ["# On-chain gas (anvil 1.7.1, embedded; ezkl 23.0.5 verifiers, solc 0.8.20)", "",
             "| model | input | public instances | verifier | runtime bytes | verifyProof gas | mint gas | commit gas |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['input']} | {r['instances']} | {r['verifier']} | {r['verifier_runtime_bytes']:,} | "
              f"{r['verify_gas']:,} | {r['mint_gas']:,} | {r['commit_gas']:,} |" for r in rows]
    (out / "gas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
