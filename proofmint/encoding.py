"""What a circuit's public instances mean, typed: visibility, instance layout, commitments.

The contracts (``ModelRegistry``, ``ProvenanceToken``) compute the same commitments from the
same instances on-chain; the functions here mirror them, and a test checks that both agree
on a real chain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from eth_abi import encode
from eth_utils import keccak

from . import ezkl_layer
from .errors import UsageError

INPUT_VISIBILITIES = ("public", "hashed", "private")
OUTPUT_VISIBILITIES = ("public", "hashed")
PARAM_VISIBILITIES = ("fixed", "hashed")


@dataclass(frozen=True)
class Visibility:
    """Which parts of an inference the proof makes public: ``public`` values are instances,
    ``hashed`` ones a Poseidon hash, a ``private`` input nothing; ``fixed`` params are baked
    into the circuit."""

    input: str = "public"
    output: str = "public"
    param: str = "fixed"

    def __post_init__(self):
        for what, value, allowed in (("input", self.input, INPUT_VISIBILITIES),
                                     ("output", self.output, OUTPUT_VISIBILITIES),
                                     ("param", self.param, PARAM_VISIBILITIES)):
            if value not in allowed:
                raise UsageError(f"--{what}-visibility {value} is not supported — choose one of "
                                 f"{', '.join(allowed)}")

    @classmethod
    def of(cls, data: Mapping[str, str]) -> "Visibility":
        return cls(data["input"], data["output"], data["param"])

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    input_hashed = property(lambda self: self.input == "hashed")
    input_public = property(lambda self: self.input == "public")
    input_private = property(lambda self: self.input == "private")
    output_hashed = property(lambda self: self.output == "hashed")
    params_hashed = property(lambda self: self.param == "hashed")

    def run_args(self) -> dict[str, str]:
        """ezkl's run-arg names for these choices."""
        return {"input_visibility": self.input, "output_visibility": self.output,
                "param_visibility": self.param}


@dataclass(frozen=True)
class InstanceLayout:
    """Where inputs and outputs sit among a proof's public instances, as the registry records
    it. ezkl's order: input hash, param hash, public inputs, public outputs (or their hash).
    Counts are per inference: item i of a batch starts at start + i * count (a hashed input
    is one hash for the whole batch)."""

    batch_size: int
    input_start: int
    input_count: int
    output_start: int
    output_count: int
    instance_count: int
    input_hashed: bool

    @classmethod
    def of(cls, visibility: Visibility, input_size: int, output_sizes: Sequence[int],
           batch_size: int = 1, input_tensors: int = 1) -> "InstanceLayout":
        """``input_tensors``: a hashed input is one hash per input tensor (a segment reading two
        tensors across a residual cut has two)."""
        pos = (input_tensors if visibility.input_hashed else 0) + int(visibility.params_hashed)
        if visibility.input_hashed:
            input_start, input_count = 0, input_tensors
        elif visibility.input_public:
            input_start, input_count = pos, input_size
            pos += input_size * batch_size
        else:  # private: the proof commits to nothing about the input
            input_start, input_count = pos, 0
        output_count = sum(output_sizes) if not visibility.output_hashed else len(output_sizes)
        return cls(batch_size, input_start, input_count, pos, output_count,
                   pos + output_count * batch_size, visibility.input_hashed)

    def solidity(self) -> dict:
        """The layout fields of the registry's ``Registration`` struct, by their Solidity names."""
        return {"batchSize": self.batch_size, "inputStart": self.input_start,
                "inputCount": self.input_count, "outputStart": self.output_start,
                "outputCount": self.output_count, "instanceCount": self.instance_count,
                "inputHashed": self.input_hashed}

    def outputs_of(self, instances: Sequence[int], index: int) -> list[int]:
        start = self.output_start + index * self.output_count
        return list(instances[start:start + self.output_count])


def uints(felts: Sequence[str]) -> list[int]:
    """Field elements as the uint256 words the EVM verifier reads."""
    return [ezkl_layer.felt_to_uint(f) for f in felts]


def word(value: int) -> bytes:
    return int(value).to_bytes(32, "big")


def quantize(values: Sequence[float], scale: int) -> list[str]:
    """Float values as the field elements a circuit at ``scale`` takes them to."""
    return [ezkl_layer.float_to_felt(float(v), scale) for v in values]


FIELD_MODULUS = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001  # BN254 scalar field


def output_felts(values: Sequence[float], scale: int) -> list[str]:
    """Decoded outputs back to the field elements the circuit holds. Exact: an output is an
    integer over 2^scale, and output scales reach 27+ (input + param scale), past the 24-bit
    mantissa of the f32 path ezkl's float_to_felt takes."""
    return [(round(float(v) * 2 ** scale) % FIELD_MODULUS).to_bytes(32, "little").hex() for v in values]


def poseidon_commitment(values: Sequence[float], scale: int) -> int:
    """The Poseidon hash ezkl makes a hashed input (or a single hashed output) into."""
    return ezkl_layer.felt_to_uint(ezkl_layer.poseidon(quantize(values, scale))[0])


PRIVATE_INPUT_COMMITMENT = keccak(b"")


def item_commitments(values: Sequence[float] | None, visibility: Visibility, scale: int,
                     batch_size: int, count: int) -> list[bytes]:
    """Each real inference's commitment to its input, as ``ProvenanceToken._inputCommitment``
    computes it from the proven instances: public input = keccak256 of the item's input
    words; hashed input = the Poseidon hash (batch 1) or keccak256(abi.encode(hash, index));
    private input = keccak256("")."""
    if values is None or visibility.input_private:
        return [PRIVATE_INPUT_COMMITMENT] * count
    if visibility.input_hashed:
        digest = word(poseidon_commitment(values, scale))
        if batch_size == 1:
            return [digest]
        return [keccak(encode(["bytes32", "uint256"], [digest, i])) for i in range(count)]
    words = [word(u) for u in uints(quantize(values, scale))]
    n = len(words) // batch_size
    return [keccak(b"".join(words[i * n:(i + 1) * n])) for i in range(count)]


def mint_commitment(items: Sequence[bytes], batch_size: int) -> bytes:
    """What a mint request claims: the item's commitment, or for a batch proof keccak256 of its
    real items' commitments (``ProvenanceToken._mintItems``)."""
    return items[0] if batch_size == 1 else keccak(b"".join(items))


def prompt(model_id: bytes, input_commitment: bytes) -> bytes:
    """ERC-7007 ``prompt``: abi.encode(modelId, inputCommitment)."""
    return encode(["bytes32", "bytes32"], [model_id, input_commitment])


def aigc_proof(zk_proof: bytes, instances: Sequence[int], vka: Sequence[bytes], index: int) -> bytes:
    """ERC-7007 ``proof``: abi.encode(zkProof, instances, vka, index)."""
    return encode(["bytes", "uint256[]", "bytes32[]", "uint256"], [zk_proof, list(instances), list(vka), index])
