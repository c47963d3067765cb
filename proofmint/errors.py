"""Errors a user can cause, in one family.

    ProofmintError
    ├── InvalidModelError (ValueError)        not ONNX, fails the checker, unsupported operator
    │   └── EzklPanicError                     ezkl panicked on the model; compile names the node
    ├── InvalidInputError (ValueError)        wrong shape/count, NaN/inf, unreadable input file
    │   └── InputOutOfRangeError               far outside the calibrated range
    ├── NotFoundError (LookupError)           unknown circuit id, token, proof bundle, zoo model
    ├── SRSError (ValueError)                 unreadable or too-small SRS file
    ├── WorkspaceError (OSError)              read-only, full or corrupt workspace
    ├── ToolchainError (RuntimeError)         solc / anvil / node missing or failing
    ├── ProvingError (RuntimeError)           ezkl failed on a step; the message names it
    │   └── TimedOutError                      a child process ran past its deadline
    ├── VerificationError (ValueError)        a proof is invalid (local or on-chain)
    ├── ChainError (RuntimeError)             RPC unreachable, reverted transaction, wrong chain
    │   └── TransactionRevertedError           the reason is decoded when the contract gave one
    ├── ContentError (ValueError)             content fetched by CID that doesn't hash to it, or can't be fetched
    ├── NodeError (ConnectionError)           the prover node can't be reached or refused the request
    └── UsageError (ValueError)               conflicting or missing options

Every message carries the offending values and what to do next. All errors
pickle (they cross process boundaries from the proving worker). ezkl's own failures are
mapped onto this tree in one place, :func:`proofmint.ezkl_layer.error`; web3's in
:mod:`proofmint.verifier.chain.client`.
"""

from __future__ import annotations


class ProofmintError(Exception):
    """Root of every error a user can cause; the CLI prints it in one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class InvalidModelError(ProofmintError, ValueError):
    """The model file is not ONNX, fails onnx.checker, or uses an operator ezkl can't prove."""


class EzklPanicError(InvalidModelError):
    """ezkl panicked (a Rust assertion) on something in the model; compile names the node."""


class InvalidInputError(ProofmintError, ValueError):
    """An input file can't be read or doesn't fit the circuit's input shape."""


class InputOutOfRangeError(InvalidInputError):
    """An input lies so far outside the calibrated range that the witness would be unprovable."""


class NotFoundError(ProofmintError, LookupError):
    """A circuit, model, token or bundle that the command names doesn't exist."""


class SRSError(ProofmintError, ValueError):
    """An SRS file is unreadable, malformed or smaller than the circuit needs."""


class WorkspaceError(ProofmintError, OSError):
    """The workspace can't be written (read-only, full) or holds a corrupt artifact."""


class ToolchainError(ProofmintError, RuntimeError):
    """An external tool (node, solc, anvil) is missing or failed."""


class ProvingError(ProofmintError, RuntimeError):
    """ezkl failed during settings, compile, setup, witness or prove."""


class TimedOutError(ProvingError):
    """A child process ran past its deadline and was stopped."""


class VerificationError(ProofmintError, ValueError):
    """A proof did not verify."""


class ChainError(ProofmintError, RuntimeError):
    """The chain can't be reached, refuses an action, or is not the one recorded."""


class TransactionRevertedError(ChainError):
    """A transaction or call reverted; the message carries the decoded reason when there is one."""


class ContentError(ProofmintError, ValueError):
    """Content fetched by its CID is missing, unreachable, or not the bytes the CID names."""


class NodeError(ProofmintError, ConnectionError):
    """The prover node (``proofmint serve``) can't be reached, or refused the request (a full
    queue, an error on its side)."""


class UsageError(ProofmintError, ValueError):
    """Options conflict or a required option is missing."""
