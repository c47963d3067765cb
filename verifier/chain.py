"""Chain access: an embedded anvil (default) or any EVM RPC, a signing account, transactions.

Without ``--rpc-url``/``PROOFMINT_RPC_URL``, proofmint uses the background chain of
``proofmint chain up`` if one runs for this workspace, else starts anvil on a free loopback
port for the length of the command. Either way anvil's state lives in the workspace
(``chain/anvil-state.json``), so contracts and tokens survive restarts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from proofmint.errors import ChainError, TransactionRevertedError, UsageError
from proofmint.store import Workspace, atomic_write_json, read_json

from . import toolchain

DEV_CHAIN_ID = 31337
DEV_MNEMONIC = "test test test test test test test test test test test junk"
START_TIMEOUT = 30.0


DEV_KEYS_REFUSED = 100  # anvil --accounts N hands out the first N; refuse well past the default 10


@functools.cache
def dev_keys(n: int = 10) -> list[str]:
    """anvil's well-known development keys (public knowledge: never for real funds): the first
    ``n`` accounts of its public test mnemonic."""
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(DEV_MNEMONIC, "")
    return ["0x" + key_from_seed(seed, f"m/44'/60'/0'/0/{i}").hex() for i in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    from web3 import Web3

    try:
        return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2})).is_connected()
    except Exception:
        return False


@dataclass
class Anvil:
    """A running anvil process whose state is kept in ``state_file``."""

    state_file: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, detach: bool = False) -> "Anvil":
        self.port = self.port or _free_port()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.state_file.parent / "anvil.log", "ab")
        self.proc = subprocess.Popen(
            [str(toolchain.anvil_path()), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", str(DEV_CHAIN_ID), "--state", str(self.state_file),
             "--state-interval", "1", "--silent"],
            stdout=log, stderr=log, start_new_session=detach,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChainError(f"anvil exited at start (code {self.proc.returncode}); see "
                                 f"{self.state_file.parent / 'anvil.log'}")
            if _answers(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGINT lets anvil dump its state before it exits."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(self.pid, self.proc):
            time.sleep(0.1)
        if _alive(self.pid, self.proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)
        self.pid = None


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


# ---- background chain (proofmint chain up/down/status) ----

def _bg_file(ws: Workspace) -> Path:
    return ws.path("chain", "anvil.json")


def chain_status(workspace: str | Path | None = None) -> dict:
    ws = Workspace.resolve(workspace)
    f = _bg_file(ws)
    if f.is_file():
        info = read_json(f)
        if _alive(info["pid"], None) and _answers(info["rpc_url"]):
            return {"running": True, **info}
    return {"running": False, "state_file": str(ws.path("chain", "anvil-state.json"))}


def chain_up(workspace: str | Path | None = None) -> dict:
    """Start anvil in the background for this workspace (no-op if it already runs)."""
    ws = Workspace.resolve(workspace)
    status = chain_status(ws.root)
    if status["running"]:
        return status
    anvil = Anvil(ws.ensure("chain") / "anvil-state.json").start(detach=True)
    info = {"pid": anvil.pid, "port": anvil.port, "rpc_url": anvil.url,
            "state_file": str(anvil.state_file)}
    atomic_write_json(_bg_file(ws), info)
    return {"running": True, **info}


def chain_down(workspace: str | Path | None = None) -> dict:
    ws = Workspace.resolve(workspace)
    status = chain_status(ws.root)
    if status["running"]:
        Anvil(Path(status["state_file"]), status["port"], pid=status["pid"]).stop()
    _bg_file(ws).unlink(missing_ok=True)
    return {"running": False, "stopped": status["running"]}


# ---- a connected chain ----

@dataclass
class Chain:
    w3: Any
    account: Any
    chain_id: int
    rpc_url: str
    embedded: bool
    ws: Workspace
    receipts: list = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.account.address

    def records(self, *parts: str) -> Path:
        return self.ws.path("chains", str(self.chain_id), *parts)

    def deploy_contract(self, abi: list, bytecode: str, *args) -> tuple[str, dict]:
        contract = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.transact(contract.constructor(*args), abi)
        return receipt["contractAddress"], receipt

    def transact(self, fn, abi: list, account=None) -> dict:
        """Sign and send a contract call; raises TransactionRevertedError with the decoded reason."""
        account = account or self.account
        try:
            # Estimate against the block the tx will land in: a reveal must follow its commit.
            gas = fn.estimate_gas({"from": account.address}, block_identifier="pending")
            tx = fn.build_transaction({
                "from": account.address, "chainId": self.chain_id, "gas": gas + gas // 5,
                "nonce": self.w3.eth.get_transaction_count(account.address),
            })
        except Exception as exc:  # gas estimation replays the call: reverts surface here
            raise TransactionRevertedError(f"transaction would revert: {decode_revert(exc, abi)}") from None
        signed = account.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except Exception as exc:
            raise ChainError(f"sending the transaction failed: {exc}") from None
        if receipt["status"] != 1:
            raise TransactionRevertedError(f"transaction {tx_hash.hex()} reverted on-chain")
        return dict(receipt)

    def call(self, fn, abi: list):
        try:
            return fn.call()
        except Exception as exc:
            raise TransactionRevertedError(f"call reverted: {decode_revert(exc, abi)}") from None


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


def _signing_account(chain_id: int):
    from eth_account import Account

    key = os.environ.get("PROOFMINT_PRIVATE_KEY")
    keystore = os.environ.get("PROOFMINT_KEYSTORE")
    if key and keystore:
        raise UsageError("set PROOFMINT_PRIVATE_KEY or PROOFMINT_KEYSTORE, not both")
    if keystore:
        password = os.environ.get("PROOFMINT_KEYSTORE_PASSWORD")
        if password is None:
            raise UsageError("PROOFMINT_KEYSTORE needs PROOFMINT_KEYSTORE_PASSWORD to decrypt it")
        try:
            key = Account.decrypt(json.loads(Path(keystore).read_text()), password).hex()
        except Exception as exc:
            raise UsageError(f"can't decrypt keystore {keystore}: {exc}") from None
    if not key:
        if chain_id != DEV_CHAIN_ID:
            raise UsageError(f"chain id {chain_id} needs a signing key: set PROOFMINT_PRIVATE_KEY "
                             "or PROOFMINT_KEYSTORE (+ PROOFMINT_KEYSTORE_PASSWORD)")
        key = dev_keys(1)[0]
    normalized = "0x" + key.lower().removeprefix("0x")
    if chain_id != DEV_CHAIN_ID and normalized in dev_keys(DEV_KEYS_REFUSED):
        raise ChainError(f"refusing anvil's public development key on chain id {chain_id}: anyone "
                         "can spend from it — use your own key")
    return Account.from_key(normalized)


@contextlib.contextmanager
def connect(rpc_url: str | None = None, workspace: str | Path | None = None) -> Iterator[Chain]:
    """A connected chain for the length of a command (starting embedded anvil if needed)."""
    from web3 import Web3

    ws = Workspace.resolve(workspace)
    rpc_url = rpc_url or os.environ.get("PROOFMINT_RPC_URL")
    anvil = None
    if rpc_url is None:
        bg = chain_status(ws.root)
        if bg["running"]:
            rpc_url = bg["rpc_url"]
        else:
            anvil = Anvil(ws.ensure("chain") / "anvil-state.json").start()
            rpc_url = anvil.url
    try:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 120}))
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:
            raise ChainError(f"chain at {rpc_url} is unreachable ({type(exc).__name__}) — check "
                             "--rpc-url, or omit it to use the embedded anvil") from None
        yield Chain(w3, _signing_account(chain_id), chain_id, rpc_url, anvil is not None, ws)
    finally:
        if anvil is not None:
            anvil.stop()
