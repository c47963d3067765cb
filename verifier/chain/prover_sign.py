"""The prover's signature in a proof bundle: who proved it, signed (EIP-191) over the proof's
statement — the proof's hash and its instances' — so the prover a token names, and pays where
the model's license reserves a share, can't be swapped (``ProvenanceToken.mintWithProver``
checks the same signature on-chain)."""

from __future__ import annotations

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from proofmint import encoding
from proofmint.errors import VerificationError
from proofmint.prover.bundle import ProofBundle

PROVER_TAG = keccak(b"proofmint.prover")  # ProvenanceToken.PROVER_TAG


def statement(bundle: ProofBundle) -> bytes:
    """``ProvenanceToken.proverStatement`` of a bundle's proof and instances."""
    instances = keccak(b"".join(encoding.word(w) for w in bundle.instance_words))
    return keccak(encode(["bytes32", "bytes32", "bytes32"], [PROVER_TAG, keccak(bundle.proof_bytes), instances]))


def sign(prover: dict, bundle: ProofBundle, account) -> dict:
    """``prover`` (a bundle's prover record) with ``account`` named and its signature over
    ``bundle``'s statement (a segmented model's: its chain's, as minted)."""
    signed = Account.sign_message(encode_defunct(primitive=statement(bundle)), account.key)
    return {**prover, "address": account.address, "signature": "0x" + bytes(signed.signature).hex()}


def signed_prover(prover: dict, bundle: ProofBundle) -> tuple[str, bytes] | None:
    """The prover a bundle names and their signature, checked: None when it names none; a
    name its signature isn't by (swapped, or the proof edited since) is refused in one line."""
    named, signature = prover.get("address"), prover.get("signature")
    if not named and not signature:
        return None
    try:
        sig = bytes.fromhex(str(signature).removeprefix("0x"))
        signer = Account.recover_message(encode_defunct(primitive=statement(bundle)), signature=sig)
        named = to_checksum_address(named)
    except Exception:  # noqa: BLE001 - a malformed address or signature, whichever way it is malformed
        raise VerificationError(f"the bundle's prover record (address {named!r}) has no valid signature — "
                                "sign it again with the prover's key, or remove it") from None
    if signer != named:
        raise VerificationError(f"the bundle names prover {named}, but its prover signature is {signer}'s — the "
                                "prover was swapped or the proof edited; nothing was sent")
    return named, sig
