"""Content addressing against independent IPFS tooling, the content store, the gateway, the
rendering of outputs and the ERC-7007 schema: no chain, no proofs."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from proofmint.errors import ContentError, UsageError
from proofmint.store import Workspace
from proofmint.verifier.content import render
from proofmint.verifier.content.publish import (_merkle_root, check_training_manifest, schema_errors)
from proofmint.verifier.content.store import (CHUNK, ContentStore, Source, cid_from_uri, cids_of, raw_cid,
                                        raw_digest, rehash)
from proofmint.verifier.chain.deploy import check_split
from proofmint.verifier.content.gateway import Gateway
from proofmint.verifier.toolchain import toolchain_dir

IPFS_CAR = toolchain_dir() / "node_modules" / ".bin" / "ipfs-car"


def ipfs_car_cid(path: Path, tmp_path: Path) -> str:
    """The root CID ipfs-car (web3.storage's @ipld/unixfs, not the importer we use) gives a file."""
    out = subprocess.run([str(IPFS_CAR), "pack", str(path), "--no-wrap", "--output", str(tmp_path / "x.car")],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("size", [0, 6, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345])
def test_cids_are_the_ones_ipfs_car_computes(size, tmp_path):
    """One raw block up to 1 MiB, a balanced DAG of raw leaves beyond: the same root either way."""
    path = tmp_path / "blob"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    ours = cids_of([path])[0]
    assert ours == ipfs_car_cid(path, tmp_path)
    assert ours.startswith("bafkrei" if size <= CHUNK else "bafybei")
    assert rehash(ours, path.read_bytes()) == ours  # what every fetch checks
    if size <= CHUNK:  # a single block: its CID is its sha256, as the token renders it on-chain
        assert raw_cid(raw_digest(ours)) == ours


def test_a_car_export_unpacks_with_ipfs_car_to_the_same_bytes(tmp_path):
    store = ContentStore(Workspace.resolve(tmp_path / "ws"))
    small, big = b'{"a": 1}\n', np.random.default_rng(7).bytes(2 * CHUNK + 5)
    cids = store.add_blobs([small, big])
    car = store.export_car(cids, tmp_path / "all.car")
    roots = subprocess.run([str(IPFS_CAR), "roots", car["car"]], capture_output=True, text=True, check=True)
    assert roots.stdout.split() == cids
    for cid, data in zip(cids, (small, big)):
        out = tmp_path / f"{cid}.out"
        subprocess.run([str(IPFS_CAR), "unpack", car["car"], "--root", cid, "--output", str(out)],
                       capture_output=True, check=True)
        assert out.read_bytes() == data


def test_the_store_refuses_what_was_swapped_under_a_cid(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    store = ContentStore(ws)
    cid = store.add_bytes(b"the real content\n")
    assert Source.of(ws).fetch(f"ipfs://{cid}") == b"the real content\n"
    big = np.random.default_rng(3).bytes(CHUNK + 10)  # two blocks: checked by importing it again
    big_cid = store.add_bytes(big)
    assert Source.of(ws).fetch(big_cid) == big
    store.path(cid).write_bytes(b"something else\n")
    store.path(big_cid).write_bytes(big[:-1] + b"x")
    for swapped in (cid, big_cid):
        with pytest.raises(ContentError, match="swapped or corrupted"):
            Source.of(ws).fetch(swapped)
    with pytest.raises(ContentError, match="no longer hashes"):
        store.export_car([cid], tmp_path / "x.car")


@pytest.mark.parametrize("bad", ["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "bafy/../../etc/passwd",
                                 "ipfs://", "", "BAFKREI" + "A" * 52])
def test_only_cidv1_base32_names_content(bad):
    with pytest.raises(ContentError):
        cid_from_uri(bad)


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_gateway_serves_by_cid_read_only_and_a_client_rehashes(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    store = ContentStore(ws)
    png = render.png(np.zeros((2, 2), dtype=np.uint8))
    cid, other = store.add_blobs([png, b"other\n"])
    with Gateway(ws) as g:
        with urllib.request.urlopen(f"{g.url}/ipfs/{cid}", timeout=10) as r:
            assert r.read() == png and r.headers["Content-Type"] == "image/png"
            assert "immutable" in r.headers["Cache-Control"]
        assert _status(f"{g.url}/ipfs/{cid}", "HEAD") == 200
        for method in ("POST", "PUT", "DELETE"):
            assert _status(f"{g.url}/ipfs/{cid}", method) == 405
        assert _status(f"{g.url}/ipfs/not-a-cid") == 400
        assert _status(f"{g.url}/ipfs/..%2F..%2Fetc%2Fpasswd") in (400, 404)
        assert _status(f"{g.url}/") == 404
        client = Source.of(Workspace.resolve(tmp_path / "empty"), g.url)
        assert client.fetch(cid) == png
        os.replace(store.path(other), store.path(cid))  # the gateway now answers cid with other bytes
        with pytest.raises(ContentError, match="swapped"):
            client.fetch(cid)
    with pytest.raises(ContentError, match="did not answer"):
        client.fetch(cid)


def test_an_image_output_renders_at_marketplace_width_pixel_for_pixel():
    values = np.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    r = render.render([values], [[1, 1, 8, 8]], "regression", "t", b"{}")
    assert r.aigc_type == "image" and r.data_type == r.image_type == "image/png"
    native, shown = render.png_pixels(r.data), render.png_pixels(r.image)
    assert native.shape == (8, 8) and shown.shape[1] >= render.IMAGE_MIN_WIDTH
    factor = shown.shape[1] // 8
    assert np.array_equal(shown, np.kron(native, np.ones((factor, factor), dtype=np.uint8)))  # nearest
    assert native[0, 0] == 0 and native[-1, -1] == 255


def test_a_class_output_gets_a_card_whose_text_cannot_escape():
    r = render.render([np.array([[0.1, 2.5, -1.0]])], [[1, 3]], "classification", '<script>"x"</script>', b"{}")
    assert r.aigc_type == "classification" and r.image_type == "image/svg+xml"
    text = r.image.decode()
    assert "class 1" in text.split("</text>")[1] and "<script>" not in text
    assert r.data == b"{}"


def _metadata(**changes) -> dict:
    base = {"name": "n", "description": "d", "image": "ipfs://bafkreia", "prompt": "[1.0]",
            "aigc_type": "image", "aigc_data": "ipfs://bafkreib", "proof_type": "validity"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def test_the_erc7007_schema_is_checked():
    assert schema_errors(_metadata()) == []
    assert schema_errors(_metadata(proof_type=None))  # required
    assert schema_errors(_metadata(proof_type="trust me"))
    assert schema_errors(_metadata(prompt=7))


def test_a_training_manifest_commits_to_every_file(tmp_path):
    files = [{"path": f"f{i}.npy", "sha256": "0x" + f"{i:02x}" * 32, "contributor": "0x" + "00" * 20}
             for i in range(3)]
    manifest = {"format": "proofmint/training-data/v1", "files": files}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    root = _merkle_root(path)
    files[1]["sha256"] = "0x" + "ff" * 32
    path.write_text(json.dumps(manifest))
    assert len(root) == 32 and _merkle_root(path) != root
    assert check_training_manifest(manifest, "m") == []
    with pytest.raises(UsageError, match="files\\[0\\] needs"):
        check_training_manifest({**manifest, "files": [{"path": "x"}]}, "m")
    with pytest.raises(UsageError, match="not a training-data manifest"):
        check_training_manifest({"files": files}, "m")


@pytest.mark.parametrize("split,message", [
    ([("0x" + "11" * 20, 9_000)], "sum to 9,000"),
    ([("0x" + "11" * 20, 6_000), ("0x" + "22" * 20, 5_000)], "sum to 11,000"),
    ([("0x" + "11" * 20, 5_000), ("0x" + "11" * 20, 5_000)], "appears twice"),
    ([("nobody", 10_000)], "not an address"),
    ([], "at least one payee"),
])
def test_a_royalty_split_must_be_exactly_100_percent(split, message):
    with pytest.raises(UsageError, match=message):
        check_split(split)
