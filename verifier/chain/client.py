"""A connected chain: the RPC client, the signing account, transactions and calls.

Without an RPC URL (``--rpc-url`` / ``PROOFMINT_RPC_URL``), proofmint uses the workspace's
embedded chain: it attaches to the one running (another command's, the node's, or ``chain up``'s)
or starts it (:func:`~proofmint.verifier.chain.anvil.workspace_chain`); on it, a transaction returns
only once the chain's state file holds its block. web3's exceptions are mapped onto proofmint's here: a revert
(``ContractLogicError``) is a :class:`TransactionRevertedError` with the decoded reason; a
timeout or a refused connection is a :class:`ChainError` that says so — never "would revert".
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from proofmint import config
from proofmint.errors import ChainError, TransactionRevertedError
from proofmint.store import Workspace

from proofmint.verifier.chain import anvil as anvil_mod
from proofmint.verifier.chain.keys import signing_account

RPC_TIMEOUT = 120.0
BLOCK_POLL_S = 1.0
BLOCK_WAIT_S = 60.0  # the longest a block may take while a reveal waits for its commitment to age
TX_GAS_CAP = 2**24  # EIP-7825 (Osaka): a chain that enforces it refuses a transaction asking for more


def gas_limit(estimate: int, block_limit: int) -> int:
    """The gas a transaction asks for: its estimate and a fifth more for what changes before it
    lands, but never more than the block holds, nor over EIP-7825's cap when the estimate is
    under it: a margin over either gets the whole transaction refused, not just the margin.
    Never under the estimate: a block that shrank below it refuses the transaction in words,
    where too little gas would run out on-chain and burn its fee."""
    cap = min(block_limit, TX_GAS_CAP) if estimate <= TX_GAS_CAP else block_limit
    return max(estimate, min(estimate + estimate // 5, cap))


def _reverted(exc: Exception) -> bool:
    from web3.exceptions import ContractLogicError

    return isinstance(exc, ContractLogicError)


def _unreachable(exc: Exception) -> bool:
    import requests
    from web3.exceptions import TimeExhausted

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            TimeExhausted, ConnectionError, TimeoutError))


def chain_error(what: str, exc: Exception, abi: list, rpc_url: str) -> ChainError:
    """One web3 failure as the proofmint error a user can act on."""
    if _reverted(exc):
        return TransactionRevertedError(f"{what} would revert: {decode_revert(exc, abi)}")
    if _unreachable(exc):
        return ChainError(f"{what} failed: the chain at {rpc_url} did not answer ({type(exc).__name__}) "
                          "— check that the node runs, or omit --rpc-url to use the embedded anvil")
    return ChainError(f"{what} failed: {type(exc).__name__}: {str(exc)[:300]}")


def decode_revert(exc: Exception, abi: list) -> str:
    """Turn a revert into 'ErrorName(args)' using the contracts' custom errors."""
    from eth_abi import decode
    from eth_utils import function_signature_to_4byte_selector

    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        text = str(exc)
        return text if text else type(exc).__name__ + " (no reason data: the verifier rejects without one)"
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [i["type"] for i in item["inputs"]]
        sig = f"{item['name']}({','.join(types)})"
        if function_signature_to_4byte_selector(sig).hex() == data[2:10]:
            values = decode(types, bytes.fromhex(data[10:]))
            shown = ", ".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)
            return f"{item['name']}({shown})"
    return f"unknown revert data {data[:74]}"


@dataclass
class Chain:
    w3: Any
    account: Any
    chain_id: int
    rpc_url: str
    embedded: bool
    ws: Workspace

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def deployments_file(self) -> Path:
        return self.ws.deployments(self.chain_id)

    def token_record_file(self, token_id: int) -> Path:
        return self.ws.token_record(self.chain_id, token_id)

    def contract(self, address: str, abi: list, *, named: bool = False):
        """A contract handle; ``named``: struct results decode to named tuples (fields by name).
        Only for struct-returning calls: web3 8 collapses unnamed multiple outputs under it."""
        return self.w3.eth.contract(address=address, abi=abi, decode_tuples=named)

    def has_code(self, address: str | None) -> bool:
        return bool(address) and len(self.w3.eth.get_code(address)) > 0

    def deploy_contract(self, abi: list, bytecode: str, *args) -> tuple[str, dict]:
        contract = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.transact(contract.constructor(*args), abi)
        return receipt["contractAddress"], receipt

    def fees(self, full_blocks: int = 0) -> dict:
        """EIP-1559 fee fields whose max fee still covers the base fee after ``full_blocks``
        full blocks (each raises it by 1/8): a tx that others keep out of blocks by filling
        them can't be priced out meanwhile. Only the base fee of the block it lands in is
        paid. Empty on a chain without a base fee (web3 then prices the tx)."""
        base = self.w3.eth.get_block("pending").get("baseFeePerGas")  # the next block's
        if base is None or not full_blocks:
            return {}
        tip = self.w3.eth.max_priority_fee
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": -(-base * 9 ** full_blocks // 8 ** full_blocks) + tip}

    def wait_for_block(self, number: int) -> None:
        """Return once a transaction sent now lands in block ``number`` or later. anvil mines
        the blocks at once; any other chain is polled, for at most BLOCK_WAIT_S a block."""
        try:
            missing = number - 1 - self.w3.eth.block_number
            if missing > 0 and self.w3.client_version.lower().startswith("anvil"):
                answer = self.w3.provider.make_request("anvil_mine", [hex(missing)])
                if "error" in answer:
                    raise ChainError(f"anvil at {self.rpc_url} refused to mine {missing} blocks: {answer['error']}")
            deadline = time.monotonic() + max(missing, 0) * BLOCK_WAIT_S
            while self.w3.eth.block_number < number - 1:
                if time.monotonic() > deadline:
                    raise ChainError(f"the chain at {self.rpc_url} is still short of block {number - 1} after "
                                     f"{missing * BLOCK_WAIT_S:.0f} s — is it producing blocks?")
                time.sleep(BLOCK_POLL_S)
        except ChainError:
            raise
        except Exception as exc:  # the node went away while we waited
            raise chain_error(f"waiting for block {number}", exc, [], self.rpc_url) from None

    def transact(self, fn, abi: list, account=None, fees: dict | None = None) -> dict:
        """Sign and send a contract call; a revert raises TransactionRevertedError with its
        reason. ``fees``: EIP-1559 fee fields (see :meth:`fees`) instead of web3's."""
        account = account or self.account
        try:
            # Estimate against the block the tx will land in: a reveal must follow its commit.
            gas = fn.estimate_gas({"from": account.address}, block_identifier="pending")
            tx = fn.build_transaction({
                "from": account.address, "chainId": self.chain_id,
                "gas": gas_limit(gas, self.w3.eth.get_block("latest")["gasLimit"]),
                "nonce": self.w3.eth.get_transaction_count(account.address), **(fees or {}),
            })
        except Exception as exc:  # web3 raises many types here: chain_error sorts them
            raise chain_error("transaction", exc, abi, self.rpc_url) from None
        signed = account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RPC_TIMEOUT)
        except Exception as exc:
            raise chain_error("sending the transaction", exc, abi, self.rpc_url) from None
        if receipt["status"] != 1:
            raise TransactionRevertedError(f"transaction {tx_hash.hex()} reverted on-chain")
        if self.embedded:  # done only once a kill of anvil can't take it back
            anvil_mod.wait_saved(self.ws, receipt["blockNumber"], receipt["blockHash"], self._block_hash)
        return dict(receipt)

    def _block_hash(self, number: int) -> bytes | None:
        from web3.exceptions import BlockNotFound

        try:
            return self.w3.eth.get_block(number)["hash"]
        except BlockNotFound:
            return None
        except Exception as exc:  # web3 raises many types here: chain_error sorts them
            raise chain_error(f"reading block {number}", exc, [], self.rpc_url) from None

    def call(self, fn, abi: list):
        try:
            return fn.call()
        except Exception as exc:
            raise chain_error("call", exc, abi, self.rpc_url) from None


@contextlib.contextmanager
def connect(*, rpc_url: str | None = None, workspace: str | Path | Workspace | None = None) -> Iterator[Chain]:
    """A connected chain for the length of a command (the workspace's embedded one without a URL)."""
    from web3 import Web3

    ws = Workspace.resolve(workspace)
    rpc_url = rpc_url or config.rpc_url()
    with contextlib.ExitStack() as stack:
        embedded = rpc_url is None
        if embedded:
            rpc_url = stack.enter_context(anvil_mod.workspace_chain(ws)).rpc_url
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": RPC_TIMEOUT}))
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:
            raise ChainError(f"chain at {rpc_url} is unreachable ({type(exc).__name__}) — check "
                             "--rpc-url, or omit it to use the embedded anvil") from None
        yield Chain(w3, signing_account(chain_id), chain_id, rpc_url, embedded, ws)
