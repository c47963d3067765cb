"""The workspace: a content-addressed folder where every artifact is written atomically.

Layout under the root (``--workspace``, ``$PROOFMINT_HOME`` or ``./.proofmint``); the
:class:`Workspace` methods below are the only code that names these paths::

    models/<model_id>.onnx              every model seen, by sha256 of its bytes
    circuits/<circuit_id>/              settings.json, model.compiled, pk.key, vk.key, package.json
    compiles/<compile_key>.json         options -> circuit id, so a repeated compile is a cache hit
    build/contracts-<digest>.json       our contracts, compiled once per source version
    anvil/                              the embedded chain, kept by verifier/keeper.py: anvil-state.json
                                        (saved after every block), saved.json, chain.json, locks, anvil.log
    chains/<chain_id>/deployments.json  contracts and registered circuits on that chain
    chains/<chain_id>/assets/<id>.json  one record per minted token
    assets/bundles/<proof>-<inf>.json   minted proof bundles, by what their token records
    content/<cid>                       the content store: every published file, named by its IPFS CID
    fetched/circuits/<circuit_id>/      circuits fetched by CID to check someone's token (verify only)
    fetched/bundles/<proof_hash>.json   proof bundles fetched by CID, likewise
    node/queue.sqlite, node/token       the prover node's job queue and its API token (0600)
    node/bundles/<job>-<item>.json      proof bundles the node made (the folder 0700: they hold inputs)
    locks/<name>.lock                   cross-process locks

A write goes to a ``.tmp-*`` file in the same folder and is renamed into place, so a
reader never sees half an artifact and a killed process leaves only ``.tmp-*`` debris,
which nothing reads. Nothing in the workspace records an absolute path into it, so a
copied workspace is self-contained.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock

from . import config
from .errors import WorkspaceError

TMP_PREFIX = ".tmp-"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def workspace_error(path: Path | str | None, exc: OSError) -> WorkspaceError:
    """A write failure as the one-line error a user can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = "the disk is full" if exc.errno == errno.ENOSPC else "over the disk quota or file size limit"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "it is read-only"
    else:
        why = exc.strerror or str(exc)
    return WorkspaceError(
        f"can't write {path}: {why} — free space or pick another workspace with "
        f"--workspace DIR or PROOFMINT_HOME"
    )


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds.

    For tools (ezkl) that write a file themselves: point them at the yielded path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise workspace_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise WorkspaceError(f"the step that writes {path.name} produced nothing")
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except WorkspaceError:
        raise  # already one line (it is an OSError too): never wrapped twice
    except OSError as exc:
        raise workspace_error(path, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    with staged(Path(path)) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise workspace_error(Path(path), exc) from None
    return Path(path)


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise WorkspaceError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}) — delete it and rerun "
            "the command that made it"
        ) from None


@dataclass(frozen=True)
class Workspace:
    """A proofmint workspace rooted at ``root``."""

    root: Path

    @classmethod
    def resolve(cls, workspace: "str | os.PathLike | Workspace | None" = None) -> "Workspace":
        if isinstance(workspace, Workspace):
            return workspace
        root = Path(workspace) if workspace else config.home()
        return cls(root.expanduser().resolve())

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ensure(self, *parts: str) -> Path:
        p = self.path(*parts)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise workspace_error(p, exc) from None
        return p

    # ---- the layout ----

    def model_file(self, model_id: str) -> Path:
        return self.path("models", f"{model_id}.onnx")

    def circuits(self) -> Path:
        return self.path("circuits")

    def scratch(self, prefix: str) -> Path:
        """A fresh ``.tmp-*`` folder beside the circuits (same disk: finished files move in)."""
        try:
            return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{prefix}-", dir=self.ensure("circuits")))
        except OSError as exc:
            raise workspace_error(self.circuits(), exc) from None

    def circuit_dir(self, circuit_id: str) -> Path:
        return self.path("circuits", circuit_id)

    def compile_entry(self, key: str) -> Path:
        return self.path("compiles", f"{key}.json")

    def contracts_build(self, digest: str) -> Path:
        return self.path("build", f"contracts-{digest}.json")

    def anvil_dir(self) -> Path:
        new, old = self.path("anvil"), self.path("chain")  # `chain/` before 2026-12
        if old.is_dir() and not new.exists():
            try:
                os.rename(old, new)
            except OSError as exc:
                raise workspace_error(new, exc) from None
        return new

    def chain_records(self, chain_id: int) -> Path:
        return self.path("chains", str(chain_id))

    def deployments(self, chain_id: int) -> Path:
        return self.chain_records(chain_id) / "deployments.json"

    def token_record(self, chain_id: int, token_id: int) -> Path:
        return self.chain_records(chain_id) / "assets" / f"{token_id}.json"

    def minted_bundle(self, proof_hash: str, inference_id: str) -> Path:
        """A minted bundle, named by what its token records on-chain: the proof hash and the
        inference id. Proof bytes alone don't name a statement: the same bytes with other
        instances are another (invalid) bundle."""
        return self.path("assets", "bundles",
                         f"{proof_hash.removeprefix('0x')}-{inference_id.removeprefix('0x')}.json")

    def content_dir(self) -> Path:
        return self.path("content")

    def fetched_circuits(self) -> Path:
        return self.path("fetched", "circuits")

    def fetched_bundle(self, proof_hash: str) -> Path:
        return self.path("fetched", "bundles", f"{proof_hash.removeprefix('0x')}.json")

    def node_queue(self) -> Path:
        return self.path("node", "queue.sqlite")

    def node_token(self) -> Path:
        return self.path("node", "token")

    def node_bundle(self, name: str) -> Path:
        return self.path("node", "bundles", f"{name}.json")

    def bench_dir(self, name: str) -> Path:
        return self.ensure("bench", name)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 3600) -> Iterator[None]:
        """Serialize work on one artifact across processes (two compiles of one model)."""
        lock_dir = self.ensure("locks")
        lock = FileLock(str(lock_dir / f"{name}.lock"), timeout=timeout)
        try:
            lock.acquire()
        except OSError as exc:
            raise workspace_error(lock_dir, exc) from None
        try:
            yield
        finally:
            lock.release()

    def store_model(self, onnx_bytes: bytes) -> tuple[str, Path]:
        """Keep a copy of the model by content; returns (model id, path)."""
        model_id = sha256_bytes(onnx_bytes)
        dest = self.model_file(model_id)
        if not dest.exists():
            atomic_write_bytes(dest, onnx_bytes)
        return model_id, dest
