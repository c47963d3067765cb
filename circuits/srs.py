"""Structured reference strings: a user's ceremony file, or a cached development SRS.

A development SRS is made locally by ``ezkl.gen_srs``; whoever ran it could know its toxic
waste, so proofs under it are not secure. Every output that depends on one says so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from proofmint import config, ezkl_layer, progress
from proofmint.errors import SRSError
from proofmint.store import atomic_write_bytes, sha256_file, staged, workspace_error

DEV_WARNING = "development SRS (not secure)"
# ParamsKZG on disk: u32 k, then 2 * 2^k G1 points of 64 bytes, then G2 elements.
_HEADER = 4
_BYTES_PER_ROW = 128


@dataclass(frozen=True)
class SRS:
    path: str
    kind: str  # "development" or "user"
    k: int
    sha256: str

    @property
    def warning(self) -> str | None:
        return DEV_WARNING if self.kind == "development" else None


def read_k(path: Path) -> int:
    """The SRS's log2 size, checked against the file's length."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(_HEADER)
    except OSError as exc:
        raise SRSError(f"can't read SRS {path}: {exc.strerror} — check the path") from None
    if len(head) < _HEADER:
        raise SRSError(f"SRS {path} is {size} bytes, too short to be an SRS — check the file")
    (k,) = struct.unpack("<I", head)
    if not 1 <= k <= 28 or size < _BYTES_PER_ROW * (1 << k):
        raise SRSError(
            f"SRS {path} is malformed or truncated (header says k={k}, file has {size} bytes, "
            f"expected at least {_BYTES_PER_ROW * (1 << k) if k <= 28 else 'far more'}) — "
            "download it again"
        )
    return k


def resolve(logrows: int, srs_path: str | Path | None = None) -> SRS:
    """The SRS for a circuit of ``logrows``: the user's file if given, else a dev one."""
    if srs_path is not None:
        path = Path(srs_path).expanduser().resolve()
        k = read_k(path)
        if k < logrows:
            raise SRSError(
                f"SRS {path} has k={k} but the circuit needs logrows {logrows} — use an SRS "
                f"with k >= {logrows}"
            )
        return SRS(str(path), "user", k, sha256_file(path))
    return development(logrows)


def cache_dir() -> Path:
    """One development SRS per logrows per machine, shared by every workspace and candidate
    (``PROOFMINT_SRS_DIR``, default ``~/.cache/proofmint/srs``)."""
    return config.srs_dir()


def _cached() -> list[tuple[int, Path]]:
    """The machine's development SRS files with a recorded digest, smallest first."""
    return sorted((int(p.stem.removeprefix("dev-k")), p) for p in cache_dir().glob("dev-k*.srs")
                  if p.stem.removeprefix("dev-k").isdigit() and p.with_suffix(".sha256").is_file())


def locate(kind: str, sha256: str, user_file: Path | None) -> Path:
    """Where the SRS a circuit was set up with lies on this machine: a development SRS by its
    digest in the machine's cache, a user's file where the package records it."""
    if kind != "development":
        if user_file is None or not user_file.is_file():
            raise SRSError(f"the circuit's SRS {user_file} is missing — put the ceremony file back "
                           "there, or compile again with --srs FILE")
        return user_file
    for _, path in _cached():
        if path.with_suffix(".sha256").read_text().strip() == sha256:
            return path
    raise SRSError(f"the development SRS this circuit was set up with ({sha256[:16]}) is not in "
                   f"{cache_dir()} (another machine's, or deleted) — compile the model again here")


def _estimate_s(logrows: int) -> float:
    """gen_srs on 2 cores: ~240 s at k=20, doubling per k (measured: k=21 took 676 s)."""
    return 240.0 * 2.0 ** (logrows - 20)


def development(logrows: int) -> SRS:
    """The machine's development SRS of exactly ``logrows``, generated once and cached.

    Never a larger one: ezkl reads the whole file on every setup and prove and rebuilds the
    Lagrange basis down to the circuit's size, which costs every proof more than generating
    the right size once (a logrows-13 LeNet proved in 14 s from a k=22 file, 2 s from its
    own; at logrows 19 that rebuild alone is minutes)."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise workspace_error(root, exc) from None
    # one lock per size: a compile waits only for the SRS it needs (a machine-wide lock held
    # a small compile for minutes behind another's large SRS)
    with FileLock(str(root / f".lock-k{logrows}")):
        path = root / f"dev-k{logrows}.srs"
        if not (path.is_file() and path.with_suffix(".sha256").is_file()):
            progress.note(f"generating a {DEV_WARNING} for logrows {logrows}, once per machine "
                          f"(about {max(_estimate_s(logrows), 1):.0f} s on 2 cores)")
            with progress.step(f"generate dev SRS k={logrows}"), staged(path) as tmp:
                ezkl_layer.gen_srs(tmp, logrows)
            read_k(path)
            atomic_write_bytes(path.with_suffix(".sha256"), sha256_file(path).encode())
    return SRS(str(path), "development", logrows, path.with_suffix(".sha256").read_text().strip())
