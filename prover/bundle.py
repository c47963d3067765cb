"""The proof bundle: one proven inference, self-describing, written as one JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from proofmint.encoding import Visibility, uints
from proofmint.errors import InvalidInputError, NotFoundError, ProofmintError
from proofmint.store import atomic_write_json, canonical_json, sha256_bytes

FORMAT = "proofmint.proof-bundle/1"


@dataclass
class ProofBundle:
    circuit_id: str
    model_id: str
    srs_kind: str
    srs_sha256: str
    visibility: Visibility
    input_shape: list[int]
    input: list[float] | None  # None when the input is private; a batch's inputs back to back
    outputs: list[list[float]]  # decoded circuit outputs, one flat list per model output (whole batch)
    reference_outputs: list[list[float]]  # onnxruntime on the same input(s)
    max_abs_diff: float
    argmax_agrees: bool | None
    ezkl_proof: dict  # ezkl's proof.json: proof bytes, instances, ...
    timings: dict = field(default_factory=dict)
    prover: dict = field(default_factory=dict)
    format: str = FORMAT
    batch_size: int = 1  # inferences in the proof
    padding: int = 0  # the last ``padding`` of them pad a partial batch: not real inferences

    @property
    def count(self) -> int:
        """Real inferences in the proof."""
        return self.batch_size - self.padding

    @property
    def instances(self) -> list[str]:
        """Public instances as ezkl writes them (little-endian hex field elements)."""
        return [felt for group in self.ezkl_proof["instances"] for felt in group]

    @property
    def instance_words(self) -> list[int]:
        """The instances as the uint256 words the EVM verifier reads."""
        return uints(self.instances)

    @property
    def proof_bytes(self) -> bytes:
        return bytes(self.ezkl_proof["proof"])

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
    missing = names - set(data) - {"timings", "prover", "batch_size", "padding"}
    if missing:
        raise InvalidInputError(f"proof bundle {path} lacks {', '.join(sorted(missing))}")
    _check_types(data, path)
    try:
        data["visibility"] = Visibility.of(data["visibility"])
    except (KeyError, TypeError, ProofmintError):
        raise InvalidInputError(f"proof bundle {path} was edited or damaged: visibility is not "
                                "one the circuits offer") from None
    return ProofBundle(**{k: v for k, v in data.items() if k in names})


def _is_numbers(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in x)


def _check_types(d: dict, path: Path) -> None:
    """A hand-edited bundle fails here with the field named, never deeper with a traceback."""
    proof = d.get("ezkl_proof")
    problems = []
    if not isinstance(d.get("circuit_id"), str) or not all(ch in "0123456789abcdef" for ch in d["circuit_id"]) \
            or len(d["circuit_id"]) != 64:
        problems.append("circuit_id is not a 64-character hex id")
    if not isinstance(d.get("visibility"), dict):
        problems.append("visibility is not an object")
    if d.get("input") is not None and not _is_numbers(d["input"]):
        problems.append("input is not a list of numbers")
    for key in ("outputs", "reference_outputs"):
        if not isinstance(d.get(key), list) or not all(_is_numbers(o) for o in d[key]):
            problems.append(f"{key} is not a list of lists of numbers")
    if not isinstance(proof, dict) or not isinstance(proof.get("proof"), list) \
            or not all(isinstance(b, int) and 0 <= b < 256 for b in proof["proof"]):
        problems.append("ezkl_proof.proof is not a list of bytes")
    elif not isinstance(proof.get("instances"), list) or not all(
            isinstance(g, list) and all(isinstance(f, str) and len(f) == 64 for f in g)
            for g in proof["instances"]):
        problems.append("ezkl_proof.instances is not a list of lists of 64-hex-digit field elements")
    batch, padding = d.get("batch_size", 1), d.get("padding", 0)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        problems.append("batch_size is not a whole number >= 1")
    elif not isinstance(padding, int) or isinstance(padding, bool) or not 0 <= padding < batch:
        problems.append("padding is not a whole number from 0 to batch_size - 1")
    if problems:
        raise InvalidInputError(f"proof bundle {path} was edited or damaged: {'; '.join(problems)}")
