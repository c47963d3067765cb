"""Content addressing: every published artifact named by the CID IPFS gives its bytes.

CIDs come from ipfs-unixfs-importer (npm, pinned) with the IPIP-499 ``unixfs-v1-2025``
profile: CIDv1, raw leaves, 1 MiB chunks, 1024 links per node, the profile ipfs-car and kubo
share, so ``ipfs add`` of the same file anywhere names it the same. A file of one chunk
(<= 1 MiB: metadata, bundles, images) is a single raw block, ``bafkrei...`` = its sha256.

The workspace keeps a content store (``content/<cid>``); content is fetched from it or from
any IPFS HTTP gateway, and *always* re-hashed before use: a gateway is trusted for nothing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from proofmint import config
from proofmint.errors import ContentError
from proofmint.store import Workspace, atomic_write_bytes, staged

from proofmint.verifier import toolchain

CHUNK = 1 << 20  # the profile's chunk size: a file up to this is one raw block
RAW_SHA256_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])  # CIDv1, codec raw, sha2-256, 32 bytes
_CID = re.compile(r"^b[a-z2-7]{50,}$")  # CIDv1 in base32 (the only form proofmint writes)
MAX_FETCH = 1 << 30


def _ipfs_js(*args: str) -> list[dict]:
    out = toolchain.run_script("ipfs.mjs", *args, what="the IPFS importer", hint="run `make setup`")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def cids_of(paths: list[Path]) -> list[str]:
    """The CID of each file, as IPFS tools name it."""
    return [r["cid"] for r in _ipfs_js("cid", *map(str, paths))] if paths else []


def cid_of_bytes(data: bytes) -> str:
    with tempfile.NamedTemporaryFile(prefix="proofmint-cid-") as f:
        f.write(data)
        f.flush()
        return cids_of([Path(f.name)])[0]


def rehash(cid: str, data: bytes) -> str:
    """The CID of ``data``, computed to check it against ``cid``: a single raw block (every
    file up to one chunk) is its sha256, so no importer run is needed; anything else is
    imported again."""
    if cid.startswith("bafkrei") and len(data) <= CHUNK:
        return raw_cid(hashlib.sha256(data).digest())
    return cid_of_bytes(data)


def check_cid(cid: str) -> str:
    if not isinstance(cid, str) or not _CID.match(cid):
        raise ContentError(f"{cid!r} is not a CIDv1 in base32 (bafy.../bafk...) — check the URI")
    return cid


def uri(cid: str) -> str:
    return f"ipfs://{cid}"


def cid_from_uri(value: str) -> str:
    """The CID of an ``ipfs://CID`` URI (a bare CID is accepted too)."""
    return check_cid(value.removeprefix("ipfs://").split("/", 1)[0])


def raw_digest(cid: str) -> bytes:
    """The sha256 a single-block CID (``bafkrei...``) names: what the token stores on-chain."""
    check_cid(cid)
    body = cid[1:].upper()
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    if raw[:4] != RAW_SHA256_PREFIX or len(raw) != 36:
        raise ContentError(f"{cid} is not a single raw block (content over {CHUNK} bytes)")
    return raw[4:]


def raw_cid(digest: bytes) -> str:
    """The CID of a single raw block with this sha256 (inverse of :func:`raw_digest`)."""
    return "b" + base64.b32encode(RAW_SHA256_PREFIX + digest).decode().lower().rstrip("=")


@dataclass(frozen=True)
class ContentStore:
    """The workspace's store: files named by CID, written once, atomically."""

    ws: Workspace

    @property
    def root(self) -> Path:
        return self.ws.content_dir()

    def path(self, cid: str) -> Path:
        return self.root / check_cid(cid)

    def has(self, cid: str) -> bool:
        return self.path(cid).is_file()

    def add_files(self, paths: list[Path]) -> list[str]:
        """Store files (one importer run for all); returns their CIDs."""
        cids = cids_of([Path(p) for p in paths])
        for path, cid in zip(paths, cids):
            if not self.has(cid):
                self.ws.ensure("content")
                with staged(self.path(cid)) as tmp:
                    shutil.copyfile(path, tmp)
        return cids

    def add_file(self, path: Path) -> str:
        return self.add_files([path])[0]

    def add_blobs(self, blobs: list[bytes]) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="proofmint-cid-") as d:
            paths = [Path(d) / str(i) for i in range(len(blobs))]
            for path, data in zip(paths, blobs):
                path.write_bytes(data)
            return self.add_files(paths)

    def add_bytes(self, data: bytes) -> str:
        return self.add_blobs([data])[0]

    def add_json(self, obj) -> str:
        return self.add_bytes((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def export_car(self, cids: list[str], out: Path) -> dict:
        """A CARv1 of these stored files (every block, rooted at their CIDs) for any pinning
        service; its roots are re-derived from the bytes and must be the CIDs asked for."""
        missing = [c for c in cids if not self.has(c)]
        if missing:
            raise ContentError(f"{missing[0]} is not in the content store {self.root}")
        out = Path(out)
        with staged(out) as tmp:
            result = _ipfs_js("car", str(tmp), *(str(self.path(c)) for c in cids))[0]
        if result["roots"] != list(cids):
            raise ContentError(f"the store's file for {cids[0]} no longer hashes to its CID — "
                               "the content store was modified")
        return {"car": str(out), "roots": result["roots"], "blocks": result["blocks"]}


@dataclass(frozen=True)
class Source:
    """Where content is fetched from: a gateway URL, else the workspace's store.

    Everything fetched is checked against its CID before it is returned."""

    store: ContentStore
    gateway: str | None = None

    @classmethod
    def of(cls, ws: Workspace, gateway: str | None = None) -> "Source":
        return cls(ContentStore(ws), (gateway or config.gateway() or "").rstrip("/") or None)

    @property
    def where(self) -> str:
        return self.gateway or f"the content store {self.store.root}"

    def fetch(self, cid_or_uri: str) -> bytes:
        cid = cid_from_uri(cid_or_uri)
        data = self._fetch_gateway(cid) if self.gateway else self._fetch_store(cid)
        got = rehash(cid, data)
        if got != cid:
            raise ContentError(f"{self.where} answered {cid} with bytes whose CID is {got}: "
                               "the content was swapped or corrupted")
        return data

    def fetch_to(self, cid_or_uri: str, dest: Path) -> Path:
        atomic_write_bytes(dest, self.fetch(cid_or_uri))
        return dest

    def fetch_json(self, cid_or_uri: str) -> dict:
        data = self.fetch(cid_or_uri)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ContentError(f"{cid_or_uri} is not JSON") from None

    def _fetch_store(self, cid: str) -> bytes:
        path = self.store.path(cid)
        if not path.is_file():
            raise ContentError(f"{cid} is not in {self.where} — pass --gateway URL of a gateway "
                               "that has it")
        return path.read_bytes()

    def _fetch_gateway(self, cid: str) -> bytes:
        url = f"{self.gateway}/ipfs/{cid}"
        try:
            with contextlib.closing(urllib.request.urlopen(url, timeout=60)) as r:
                data = r.read(MAX_FETCH + 1)
        except urllib.error.HTTPError as exc:
            raise ContentError(f"{url} answered HTTP {exc.code} — is the content pinned there?") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ContentError(f"the gateway {self.gateway} did not answer ({reason}) — start it "
                               "with `proofmint gateway` or pass another --gateway") from None
        if len(data) > MAX_FETCH:
            raise ContentError(f"{url} is over {MAX_FETCH} bytes: refusing it")
        return data
