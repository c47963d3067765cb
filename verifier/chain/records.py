"""What this workspace deployed on a chain, and the chain's records, read as typed values.

The contracts' structs decode by field name (web3's ``decode_tuples``), so nothing here copies
a Solidity field order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import is_address, to_checksum_address

from proofmint.errors import ChainError, NotFoundError, UsageError
from proofmint.store import read_json

from proofmint.verifier.evm import build_contracts
from proofmint.verifier.chain.client import Chain


# What ModelRegistry.firstRegistrations answers for, in its order.
ALIAS_KEYS = ("circuit hash", "ONNX hash", "vk hash", "verifier key")


def _plain(value: Any) -> Any:
    """A decoded struct as JSON-friendly values: bytes as 0x-hex, nested structs as dicts, arrays as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Deployment:
    """The registry and token this workspace deployed on ``chain``, with their handles."""

    chain: Chain
    record: dict  # deployments.json
    registry: Any
    token: Any
    abi: list  # our contracts' ABIs together: for decoding any of their errors

    def entry(self, circuit_id: str) -> dict | None:
        """The recorded deployment of a circuit's verifier and registration."""
        return self.record["verifiers"].get(circuit_id)

    def _named(self, contract):
        return self.chain.contract(contract.address, contract.abi, named=True)

    def token_record(self, token_id: int) -> dict:
        """``ProvenanceToken.record``: its fields by their Solidity names (bytes as 0x-hex)."""
        return _plain(self.chain.call(self._named(self.token).functions.record(token_id), self.abi))

    def model(self, model_id: str) -> dict:
        """``ModelRegistry.model``: owner, verifier code hash and the registration's fields, flat."""
        fn = self._named(self.registry).functions.model(bytes.fromhex(model_id[2:]))
        m = _plain(self.chain.call(fn, self.abi))
        return {**m.pop("registration"), **m}

    def segments(self, model_id: str) -> dict:
        """``ModelRegistry.segmentsOf``: a segmented model's ``segments`` (each one's registered
        fields, flat, with its verifier's ``codeHash`` and ``vkDigest``) and ``links`` (outputs
        and inputs, by position); both empty for a single circuit."""
        fn = self._named(self.registry).functions.segmentsOf(bytes.fromhex(model_id[2:]))
        out = _plain(self.chain.call(fn, self.abi))  # named outputs: {"segments": ..., "links": ...}
        return {"segments": [{**s.pop("segment"), **s} for s in out["segments"]], "links": out["links"]}

    def registration(self, model_id: str) -> dict:
        """Who registered ``model_id``, and the earlier registrations by other owners of the
        same circuit hash, ONNX hash, vk hash or verifier key (``alias_of``): the chain can't
        tell an original from an alias or a squat, so both owners are named."""
        owner = self.model(model_id)["owner"]
        firsts = self.chain.call(self.registry.functions.firstRegistrations(bytes.fromhex(model_id[2:])), self.abi)
        earlier: dict[str, dict] = {}
        for same, first in zip(ALIAS_KEYS, map(_plain, firsts)):
            if first != model_id and (other := self.model(first)["owner"]) != owner:
                earlier.setdefault(first, {"id": first, "owner": other, "same": []})["same"].append(same)
        return {"id": model_id, "owner": owner, "alias_of": list(earlier.values())}


def deployment(c: Chain, token: str | None = None) -> Deployment:
    """The recorded registry and token on this chain, refusing records that don't fit it.

    ``token``: a ProvenanceToken address, for a chain this workspace never deployed to (its
    registry is the one the token names)."""
    built = build_contracts(c.ws)
    # every contract a call can revert in (a split's errors bubble up through the registry)
    abi = built["ProvenanceToken"]["abi"] + built["ModelRegistry"]["abi"] + built["RoyaltySplit"]["abi"]
    if token:
        if not is_address(token):
            raise UsageError(f"--token {token!r} is not an address")
        token = to_checksum_address(token)
        if not c.has_code(token):
            raise ChainError(f"there is no contract at {token} on chain {c.chain_id} ({c.rpc_url}) "
                             "— pass the address of the ProvenanceToken")
        tok = c.contract(token, built["ProvenanceToken"]["abi"])
        registry = c.call(tok.functions.registry(), abi)
        record = {"chain_id": c.chain_id, "registry": registry, "token": tok.address, "verifiers": {}}
        return Deployment(c, record, c.contract(registry, built["ModelRegistry"]["abi"]), tok, abi)
    path = c.deployments_file
    if not path.is_file():
        raise NotFoundError(f"nothing is deployed on chain {c.chain_id} — run `proofmint deploy "
                            "CIRCUIT_ID` first")
    dep = read_json(path)
    if dep.get("chain_id") != c.chain_id:
        raise ChainError(f"{path} records a deployment on chain id {dep.get('chain_id')}, but "
                         f"{c.rpc_url} is chain id {c.chain_id} — refusing to mix chains")
    if not c.has_code(dep["token"]) or not c.has_code(dep["registry"]):
        raise ChainError(f"the chain at {c.rpc_url} (chain id {c.chain_id}) has no code at the "
                         f"recorded token {dep['token']}: it is not the chain this workspace "
                         "deployed to (or it was reset) — run `proofmint deploy` again")
    return Deployment(c, dep, c.contract(dep["registry"], built["ModelRegistry"]["abi"]),
                      c.contract(dep["token"], built["ProvenanceToken"]["abi"]), abi)
