"""The signing account: a private key or keystore from the config, or anvil's dev key on a dev chain."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from proofmint import config
from proofmint.errors import ChainError, UsageError

from proofmint.verifier.chain.anvil import DEV_CHAIN_ID

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_KEYS_REFUSED = 100  # anvil --accounts N hands out the first N; refuse well past the default 10


@functools.cache
def dev_keys(n: int = 10) -> list[str]:
    """anvil's well-known development keys (public knowledge: never for real funds): the first
    ``n`` accounts of its public test mnemonic."""
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(DEV_MNEMONIC, "")
    return ["0x" + key_from_seed(seed, f"m/44'/60'/0'/0/{i}").hex() for i in range(n)]


def signing_account(chain_id: int):
    """The account that signs this command's transactions on chain ``chain_id``."""
    from eth_account import Account

    key, keystore, password = config.signing_env()
    if key and keystore:
        raise UsageError(f"set {config.PRIVATE_KEY} or {config.KEYSTORE}, not both")
    if keystore:
        if password is None:
            raise UsageError(f"{config.KEYSTORE} needs {config.KEYSTORE_PASSWORD} to decrypt it")
        try:
            key = Account.decrypt(json.loads(Path(keystore).read_text()), password).hex()
        except Exception as exc:  # unreadable file, bad JSON, wrong password: one line, either way
            raise UsageError(f"can't decrypt keystore {keystore}: {exc}") from None
    if not key:
        if chain_id != DEV_CHAIN_ID:
            raise UsageError(f"chain id {chain_id} needs a signing key: set {config.PRIVATE_KEY} "
                             f"or {config.KEYSTORE} (+ {config.KEYSTORE_PASSWORD})")
        key = dev_keys(1)[0]
    normalized = "0x" + key.lower().removeprefix("0x")
    if chain_id != DEV_CHAIN_ID and normalized in dev_keys(DEV_KEYS_REFUSED):
        raise ChainError(f"refusing anvil's public development key on chain id {chain_id}: anyone "
                         "can spend from it — use your own key")
    return Account.from_key(normalized)
