"""The proof bundle: one proven inference, self-describing, written as one JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from proofmint.errors import InvalidInputError, NotFoundError
from proofmint.store import atomic_write_json, canonical_json, sha256_bytes

FORMAT = "proofmint.proof-bundle/1"


@dataclass
class ProofBundle:
    circuit_id: str
    model_id: str
    srs_kind: str
    srs_sha256: str
    visibility: dict
    input_shape: list[int]
    input: list[float] | None  # None when the input is private
    outputs: list[list[float]]  # decoded circuit outputs, one flat list per model output
    reference_outputs: list[list[float]]  # onnxruntime on the same input
    max_abs_diff: float
    argmax_agrees: bool | None
    ezkl_proof: dict  # ezkl's proof.json: proof bytes, instances, ...
    timings: dict = field(default_factory=dict)
    prover: dict = field(default_factory=dict)
    format: str = FORMAT

    @property
    def instances(self) -> list[str]:
        """Public instances as ezkl writes them (little-endian hex field elements)."""
        return [felt for group in self.ezkl_proof["instances"] for felt in group]

    @property
    def proof_hash(self) -> str:
        return sha256_bytes(canonical_json({"proof": self.ezkl_proof.get("proof"),
                                            "instances": self.ezkl_proof.get("instances")}))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())


def load_bundle(path: str | Path) -> ProofBundle:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no proof bundle at {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not a proof bundle (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a proofmint proof bundle (format is not {FORMAT}) "
                                "— pass a file written by `proofmint prove`")
    names = {f.name for f in fields(ProofBundle)}
    missing = names - set(data) - {"timings", "prover"}
    if missing:
        raise InvalidInputError(f"proof bundle {path} lacks {', '.join(sorted(missing))}")
    bundle = ProofBundle(**{k: v for k, v in data.items() if k in names})
    proof = bundle.ezkl_proof
    if not isinstance(proof, dict) or not isinstance(proof.get("instances"), list) \
            or not isinstance(proof.get("proof"), list):
        raise InvalidInputError(f"proof bundle {path} has a malformed ezkl_proof (needs 'proof' "
                                "and 'instances' lists)")
    return bundle
