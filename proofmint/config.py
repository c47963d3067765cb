"""Every ``PROOFMINT_*`` environment variable, read in one place.

Stage code never reads the environment: it takes explicit arguments, and the defaults for
those come from here. Variables (and what they set):

    PROOFMINT_HOME               workspace folder (default ./.proofmint)
    PROOFMINT_SRS_DIR            the machine's development SRS cache (default ~/.cache/proofmint/srs)
    PROOFMINT_TOOLCHAIN          folder of the pinned npm toolchain (default the package's toolchain/)
    PROOFMINT_RPC_URL            EVM JSON-RPC URL (default: an embedded anvil)
    PROOFMINT_GATEWAY            IPFS HTTP gateway content is fetched from (default: the workspace's store)
    PROOFMINT_NODE               URL of the prover node `proofmint jobs` talks to (default http://127.0.0.1:8000)
    PROOFMINT_PRIVATE_KEY        signing key, or
    PROOFMINT_KEYSTORE           an encrypted keystore file, with
    PROOFMINT_KEYSTORE_PASSWORD  its password
    PROOFMINT_DEBUG              show tracebacks for every error
    PROOFMINT_VERBOSE            show ezkl's own reports (on stderr)
    PROOFMINT_FAILPOINT          crash tests: SIGKILL the process at the named failpoint
    PROOFMINT_MEMORY             memory a circuit may plan for, e.g. 64G (default: the machine's
                                 RAM, or its cgroup v2 limit where lower)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

HOME = "PROOFMINT_HOME"
SRS_DIR = "PROOFMINT_SRS_DIR"
TOOLCHAIN = "PROOFMINT_TOOLCHAIN"
RPC_URL = "PROOFMINT_RPC_URL"
GATEWAY = "PROOFMINT_GATEWAY"
NODE = "PROOFMINT_NODE"
DEFAULT_NODE = "http://127.0.0.1:8000"
PRIVATE_KEY = "PROOFMINT_PRIVATE_KEY"
KEYSTORE = "PROOFMINT_KEYSTORE"
KEYSTORE_PASSWORD = "PROOFMINT_KEYSTORE_PASSWORD"
DEBUG = "PROOFMINT_DEBUG"
VERBOSE = "PROOFMINT_VERBOSE"
FAILPOINT = "PROOFMINT_FAILPOINT"
MEMORY = "PROOFMINT_MEMORY"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

DEFAULT_HOME = ".proofmint"


def _get(name: str) -> str | None:
    return os.environ.get(name) or None


def home() -> Path:
    return Path(_get(HOME) or DEFAULT_HOME)


def srs_dir() -> Path:
    return Path(_get(SRS_DIR) or Path.home() / ".cache" / "proofmint" / "srs").expanduser()


def toolchain_dir() -> Path:
    """``PROOFMINT_TOOLCHAIN``, else the installed package's ``proofmint/toolchain`` (a wheel),
    else the source tree's ``toolchain/`` (a checkout, an editable install)."""
    env = _get(TOOLCHAIN)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    return here / "toolchain" if (here / "toolchain").is_dir() else here.parent / "toolchain"


def rpc_url() -> str | None:
    return _get(RPC_URL)


def gateway() -> str | None:
    return _get(GATEWAY)


def node_url() -> str:
    return _get(NODE) or DEFAULT_NODE


def signing_env() -> tuple[str | None, str | None, str | None]:
    """(private key, keystore path, keystore password)."""
    return _get(PRIVATE_KEY), _get(KEYSTORE), os.environ.get(KEYSTORE_PASSWORD)


def debug() -> bool:
    return bool(_get(DEBUG))


def verbose() -> bool:
    return bool(_get(VERBOSE))


def failpoint() -> str | None:
    return _get(FAILPOINT)


def size_bytes(text: str | int, what: str) -> int:
    """An amount of memory written as bytes or with K/M/G/T (``64G``, ``512M``, ``256MiB``)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(?:([KMGT])I?)?B?\s*", str(text), re.IGNORECASE)
        value = float(m[1]) * _UNITS[(m[2] or "").upper()] if m else 0
    if not 1 <= value < 2**63:
        raise UsageError(f"{what}={text!r} is not an amount of memory — write e.g. 64G or 512M")
    return int(value)


def memory_bytes() -> int:
    """The memory to plan for (a circuit's key may take 40 % of it): ``PROOFMINT_MEMORY``
    (bytes, or with K/M/G/T), else the machine's RAM or its cgroup v2 limit, whichever is lower
    (a container sees the host's RAM)."""
    env = _get(MEMORY)
    if env is not None:
        return size_bytes(env, MEMORY)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total
