"""The workspace: a content-addressed folder where every artifact is written atomically.

Layout under the root (``--workspace``, ``$PROOFMINT_HOME`` or ``./.proofmint``)::

    models/<model_id>.onnx              every model seen, by sha256 of its bytes
    circuits/<circuit_id>/              settings.json, model.compiled, pk.key, vk.key, package.json
    compiles/<compile_key>.json         options -> circuit id, so a repeated compile is a cache hit
    srs/dev-k<logrows>.srs              development SRS, generated once per logrows
    chains/<chain_id>/...               deployments and minted assets (on-chain part)

A write goes to a ``.tmp-*`` file in the same folder and is renamed into place, so a
reader never sees half an artifact and a killed process leaves only ``.tmp-*`` debris,
which nothing reads.
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

from .errors import WorkspaceError

DEFAULT_HOME = ".proofmint"
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
    if exc.errno == errno.ENOSPC:
        why = "the disk is full"
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
    def resolve(cls, workspace: str | os.PathLike | None = None) -> "Workspace":
        root = workspace or os.environ.get("PROOFMINT_HOME") or DEFAULT_HOME
        return cls(Path(root).expanduser().resolve())

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ensure(self, *parts: str) -> Path:
        p = self.path(*parts)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise workspace_error(p, exc) from None
        return p

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
        dest = self.path("models", f"{model_id}.onnx")
        if not dest.exists():
            atomic_write_bytes(dest, onnx_bytes)
        return model_id, dest
