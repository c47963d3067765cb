"""The explorer in Debian's Chromium, driven by Playwright (never a downloaded browser): each page
as a collector reads it, Verify in place, copyable addresses, pagination, the 4xx pages; no
request leaves the node, no server path reaches a page, and a page costs the RPC calls of what
it shows (counted at a JSON-RPC proxy between the node and anvil, by function selector)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_utils import function_signature_to_4byte_selector

import proofmint
from proofmint import config
from proofmint.store import Workspace
from proofmint.verifier.chain.client import connect
from proofmint.verifier.chain.keys import dev_keys
from proofmint.verifier.chain.records import deployment

from ...conftest import ASSET_PARENT_SHARE, ASSET_SPLIT
from .test_node import NodeProcess, _wait, request

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make setup` installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--disable-extensions", "--metrics-recording-only", "--disable-breakpad"]
SCREENSHOTS = os.environ.get("PROOFMINT_SCREENSHOTS")  # a folder: where docs/explorer-*.png come from


def selector(signature: str) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex()


TOKEN_URI, RECORD = selector("tokenURI(uint256)"), selector("record(uint256)")


class RpcProxy:
    """A JSON-RPC proxy in front of anvil that records each method the node calls (and, for an
    eth_call, the function selector)."""

    def __init__(self, upstream: str):
        calls, lock = [], threading.Lock()
        self.calls, self.lock = calls, lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = json.loads(body)
                with lock:
                    for m in msg if isinstance(msg, list) else [msg]:
                        p = (m.get("params") or [{}])[0]
                        data = (p.get("data") or p.get("input") or "") if isinstance(p, dict) else ""
                        calls.append((m["method"], data[:10]))
                up = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(up, timeout=120) as r:
                    answer = r.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def during(self, action) -> Counter:
        """What ``action`` made the node call: (method, selector) -> count."""
        with self.lock:
            start = len(self.calls)
        action()
        with self.lock:
            return Counter(self.calls[start:])


@pytest.fixture(scope="module")
def site(asset, circuits, proofs, zoo, anvil, tmp_path_factory):
    """A workspace of its own on the session's anvil: the generator (v1.0.0, a 70/20/10 split)
    with a token and its derivative, and the wine classifier (v2.1) with a token the node mints
    from a job; the node talks to anvil through an RPC-counting proxy."""
    root = tmp_path_factory.mktemp("explorer")
    ws = Workspace.resolve(root / "ws")
    for name in ("generator", "mlp"):
        shutil.copytree(Path(circuits[name].package.dir), ws.circuit_dir(circuits[name].circuit_id))
    shutil.copytree(asset["ws"].root / "build", ws.root / "build")  # the contracts, compiled once
    proofmint.deploy(circuits["generator"].circuit_id, royalty_split=ASSET_SPLIT, version="1.0.0",
                     training_data=zoo["generator"].training, rpc_url=anvil.url, workspace=ws,
                     license=proofmint.License(parent_share_bps=ASSET_PARENT_SHARE))
    proofmint.deploy(circuits["mlp"].circuit_id, version="2.1", training_data=zoo["mlp"].training,
                     rpc_url=anvil.url, workspace=ws)
    child_record = proofmint.show(asset["child"].token_id, rpc_url=anvil.url, workspace=asset["ws"]).record
    second = asset["ws"].minted_bundle(child_record["proofHash"], child_record["inferenceId"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(config.PRIVATE_KEY, dev_keys()[3])
        first = proofmint.mint(proofs["generator"], rpc_url=anvil.url, workspace=ws)
        child = proofmint.mint(second, parent=first.token_id, rpc_url=anvil.url, workspace=ws)
    proxy = RpcProxy(anvil.url)
    node = NodeProcess(ws.root, proxy.url, root / "node.log").start()
    try:
        with urllib.request.urlopen(node.url + "/", timeout=60) as r:
            before = r.read().decode()  # read before the node's own mint: the index must see it after
        row = json.loads(Path(zoo["mlp"].input).read_text())["input_data"][0]
        status, _, r = request(f"{node.url}/api/jobs", {"circuit": circuits["mlp"].circuit_id, "inputs": [row],
                                                        "mint": True}, node.token)
        assert status == 202, r
        job = _wait(node, r["job"], lambda v: v["status"] in ("done", "failed", "partial"))
        assert job["status"] == "done", job
        with connect(rpc_url=anvil.url, workspace=ws) as c:
            d = deployment(c)
            token, generator = d.token.address, d.token_record(first.token_id)["modelId"]
        yield {"ws": ws, "node": node, "proxy": proxy, "first": first.token_id, "child": child.token_id,
               "wine": job["items"][0]["tokens"][0], "job": r["job"], "token": token, "before": before,
               "generator": generator}
    finally:
        node.stop()
        proxy.server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), "Debian's chromium is installed by `make setup`"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Tab:
    """A page in a fresh context that records every request and console error."""

    def __init__(self, browser, site):
        self.site = site
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site["node"].url)
        self.page = self.context.new_page()
        self.requests, self.errors, self.expected = [], [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def goto(self, path: str, status: int = 200):
        if status != 200:  # Chromium logs an error status of the page itself
            self.expected.append(f"Failed to load resource: the server responded with a status of {status} ")
        response = self.page.goto(self.site["node"].url + path)
        assert response.status == status, (path, response.status, self.page.content()[:2000])
        assert response.headers["content-type"].startswith("text/html")
        return response

    def shot(self, name: str) -> None:
        """A screenshot for docs/ (with PROOFMINT_SCREENSHOTS=docs)."""
        if SCREENSHOTS:
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"explorer-{name}.png"), full_page=True)

    def close(self, shot: str | None = None) -> None:
        """Check what every page must hold, then close (saving a screenshot first)."""
        if shot:
            self.shot(shot)
        content = self.page.content()
        assert str(self.site["ws"].root) not in content and "/tmp/" not in content and ".proofmint" not in content
        outside = [u for u in self.requests if not u.startswith(self.site["node"].url)]
        assert not outside, outside  # offline: styles, script and images are the node's own
        errors = [e for e in self.errors if not any(e.startswith(x) for x in self.expected)]
        assert not errors, errors  # includes any Content-Security-Policy refusal
        self.context.close()


@pytest.fixture
def tab(browser, site):
    t = Tab(browser, site)
    yield t
    t.context.close()  # a no-op after Tab.close


def test_the_index_pages_tokens_with_readable_thumbnails_and_one_tokenuri_call_each(tab, site):
    proxy = site["proxy"]
    calls = proxy.during(lambda: tab.goto("/"))
    cards = tab.page.locator("a.card")
    assert cards.count() == 3
    titles = cards.locator(".title").all_inner_texts()
    assert titles[0] == f"Class {_top_class(site)} — 3-class classifier v2.1 #{site['wine']}"
    assert titles[1:] == [f"8×8 image — image generator v1.0.0 #{t}" for t in (site["child"], site["first"])]
    for box in tab.page.locator("a.card img").all():
        shown = box.evaluate("i => { const r = i.getBoundingClientRect(), s = getComputedStyle(i);"
                             " return [r.width, r.height, i.naturalWidth, s.objectFit, s.imageRendering] }")
        assert shown[0] >= 160 and shown[1] >= 160 and shown[2] >= 320, shown  # loaded, not a 48 px stamp
        assert shown[3] == "contain" and shown[4] == "pixelated", shown  # a 3:2 card keeps its shape
    assert calls[("eth_call", TOKEN_URI)] == 3 and calls[("eth_call", RECORD)] == 0, calls
    assert calls[("eth_getLogs", "")] <= 1, calls  # only the blocks since the last page's read
    assert site["before"].count("class=card") == 2  # the page read before the node's mint
    tab.close("index")


def test_the_index_paginates_and_each_page_reads_only_its_own_tokens(tab, site):
    calls = site["proxy"].during(lambda: tab.goto("/?per=1"))
    assert tab.page.locator("a.card").count() == 1 and calls[("eth_call", TOKEN_URI)] == 1, calls
    assert tab.page.inner_text("#range") == "1–1 of 3 tokens, newest first"
    tab.page.click("a[rel=next]")
    tab.page.wait_for_url("**/?page=2&per=1")
    assert tab.page.locator("a.card .title").inner_text().endswith(f"#{site['child']}")
    tab.page.click("a[rel=next]")
    assert tab.page.locator("a.card .title").inner_text().endswith(f"#{site['first']}")
    assert tab.page.locator("a[rel=next]").count() == 0 and tab.page.locator("a[rel=prev]").count() == 1
    tab.goto("/?page=4&per=1", 404)
    assert "past the last page (3)" in tab.page.inner_text("#error")
    tab.goto(f"/?model={site['generator']}")  # one model's tokens, as its page links them
    assert tab.page.inner_text("h1") == "Image generator v1.0.0"
    assert [t.rsplit("#", 1)[1] for t in tab.page.locator("a.card .title").all_inner_texts()] == \
        [str(site["child"]), str(site["first"])]
    tab.close()


def test_the_token_page_reads_like_a_collectors_page_and_verifies_in_place(tab, site, anvil):
    first, node = site["first"], site["node"]
    calls = site["proxy"].during(lambda: tab.goto(f"/tokens/{first}"))
    assert calls[("eth_call", TOKEN_URI)] == 1 and calls[("eth_call", RECORD)] == 1, calls  # no scan
    page = tab.page
    assert page.inner_text("h1") == f"8×8 image — image generator v1.0.0 #{first}"
    assert page.title().startswith("8×8 image — image generator v1.0.0")
    with connect(rpc_url=anvil.url, workspace=site["ws"]) as c:
        d = deployment(c)
        meta = json.loads(urllib.request.urlopen(f"{node.url}/ipfs/" + d.chain.call(
            d.token.functions.tokenURI(first), d.abi).removeprefix("ipfs://")).read())
        log, = d.token.events.Minted().get_logs(from_block=0, argument_filters={"tokenId": first})
    traits = page.locator(".trait").all_inner_texts()
    assert [t.split("\n") for t in traits] == [[a["trait_type"].upper(), str(a["value"])] for a in meta["attributes"]]
    text = page.inner_text("main")
    assert "ERC-721 + ERC-7007 + ERC-2981" in text and "31337" in text and f"block {log.blockNumber}" in text
    tx = "0x" + log.transactionHash.hex().removeprefix("0x")
    assert page.locator(f"span[title='{tx}']").inner_text() == f"{tx[:6]}…{tx[-4:]}"
    assert f"#{site['child']}" in page.locator("dl.kv").nth(1).inner_text()  # children, from events
    image = page.locator(".frame img").evaluate(
        "i => [i.naturalWidth, i.getBoundingClientRect().width, getComputedStyle(i).imageRendering]")
    assert image[0] >= 320 and 250 <= image[1] <= 420 and image[2] == "pixelated", image
    folded = page.locator("details")
    assert folded.count() == 3 and not any(d.get_attribute("open") is not None for d in folded.all())
    assert not page.locator("details pre").first.is_visible()  # the raw input/outputs are folded away
    tab.shot("token")
    copy = page.locator(f"button.copy[data-copy='{site['token']}']").first
    assert page.locator(f"span[title='{site['token']}']").first.inner_text() == \
        f"{site['token'][:6]}…{site['token'][-4:]}"
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == site["token"]
    assert "not named" in page.locator("dl.kv").nth(1).inner_text()  # prover: minted by the CLI, naming none
    tab.goto(f"/tokens/{site['child']}")  # a parent of the same model: named, nothing proves how it was used
    assert "lineage declared" in page.locator("dl.kv").nth(1).inner_text()
    tab.close()


def test_verify_runs_every_check_in_place_with_progress_and_the_block(tab, site, anvil):
    page, url = tab.page, f"{site['node'].url}/tokens/{site['first']}"
    tab.goto(f"/tokens/{site['first']}")
    with connect(rpc_url=anvil.url, workspace=site["ws"]) as c:
        block = c.w3.eth.block_number
    page.click("#verify")
    page.wait_for_selector("#verify-status .spinner", state="visible")
    assert page.locator("#verify").is_disabled()
    page.wait_for_selector("#verdict:text('VALID')", timeout=300_000)
    assert page.url == url  # no navigation away
    assert page.inner_text("#verdict") == "VALID" and page.locator("#verify-status").is_hidden()
    when = page.inner_text("#verify-when")
    assert when.startswith(f"checked at block {block} of chain 31337"), when
    rows = page.locator("#verify-checks tr")
    names = [r.locator("td").nth(1).inner_text() for r in rows.all()]
    assert {"metadata", "on-chain verify", "local verify", "re-run model", "content"} <= set(names), names
    assert all(r.locator("td").first.inner_text() == "✓" for r in rows.all())
    assert f"{len(names)} of {len(names)} checks passed" in when
    tab.close("verify")


def test_a_model_page_is_named_from_its_metadata(tab, site):
    tab.goto("/models")
    assert tab.page.locator("table a", has_text="Image generator v1.0.0").count() == 1
    assert tab.page.locator("table a", has_text="3-class classifier v2.1").count() == 1
    tab.page.click("text=Image generator v1.0.0")
    assert tab.page.inner_text("h1") == "Image generator v1.0.0"
    assert tab.page.title() == "Image generator v1.0.0 — proofmint"
    assert "8×8 grayscale images · trained on scikit-learn digits" in tab.page.inner_text(".sub")
    cards = tab.page.locator("a.card .title").all_inner_texts()
    assert [c.rsplit("#", 1)[1] for c in cards] == [str(site["child"]), str(site["first"])]
    text = tab.page.inner_text("main")
    assert "a derivative's parent gets 20.00 % of its royalty" in text and "70.00 %" in text
    tab.close("model")


def test_the_queue_page_lists_the_job_and_links_its_token(tab, site):
    tab.goto("/queue")
    row = tab.page.locator("tr", has_text=site["job"])
    assert "done" in row.inner_text()
    tab.shot("queue")
    row.locator(f"a:text('#{site['wine']}')").click()
    tab.page.wait_for_url(f"**/tokens/{site['wine']}")
    assert tab.page.inner_text("h1").startswith("Class ")
    assert tab.page.locator(".frame img").evaluate("i => i.naturalWidth") == 480  # the classification card
    tab.close()


@pytest.mark.parametrize("path, status, says", [
    ("/tokens/99", 404, "no token #99"), ("/tokens/-1", 400, "'-1' is not a token id"),
    ("/tokens/abc", 400, "'abc' is not a token id"), ("/tokens/0", 400, "'0' is not a token id"),
    ("/models/0x1234", 400, "not a model registration id"), ("/models/nothex", 400, "not a model registration id"),
    ("/models/0x" + "00" * 32, 404, "model is registered as"), ("/?page=0", 400, "?page=0 is out of range"),
    ("/?per=1000", 400, "?per=1000 is out of range"), ("/no/such/page", 404, "no explorer page"),
    ("/?model=0x" + "11" * 32, 404, "model is registered as"),
])
def test_bad_addresses_get_an_html_4xx_page(tab, path, status, says):
    tab.goto(path, status)
    assert tab.page.inner_text("h1") == {400: "Bad request", 404: "Not found"}[status]
    assert says in tab.page.inner_text("#error")
    tab.close("404" if path == "/tokens/99" else None)


def test_the_verify_endpoint_and_the_api_still_answer_json(site):
    status, _, r = request(f"{site['node'].url}/tokens/99/verify")
    assert status == 404 and "no token #99" in r["error"]
    status, _, r = request(f"{site['node'].url}/tokens/-1/verify")
    assert status == 400 and "not a token id" in r["error"]
    status, _, r = request(f"{site['node'].url}/api/jobs/nope")
    assert status == 404 and "error" in r


def _top_class(site) -> int:
    """The wine token's class, read from its outputs document."""
    from proofmint.verifier.content.store import Source

    meta = proofmint.show(site["wine"], rpc_url=site["proxy"].url, workspace=site["ws"]).metadata
    values = Source.of(site["ws"]).fetch_json(meta["outputs"]["uri"])["outputs"][0]
    return max(range(len(values)), key=values.__getitem__)


def test_what_a_minter_wrote_is_escaped_and_reaches_no_other_route():
    """A minter writes the metadata (and a registrant the package): its URIs must be CIDs (an
    image at '/ipfs/../tokens/1/verify' would make every visitor's browser start a verification),
    its text is escaped, garbled JSON is shown as unknown, not a 500; messages lose the node's
    paths but keep URLs and CIDs."""
    from proofmint.verifier.node.explorer import ModelInfo, folded_html, img, ipfs_link, public, token_title, traits_html

    cid = "bafkreifrotuor76hse6prk2hlnrjkms2a6beoguij2nhn5dpfjey2wdzcm"
    assert img(f"ipfs://{cid}", "x") == f"<img alt='x' src='/ipfs/{cid}'>"
    for bad in ("ipfs://../tokens/1/verify", "ipfs://x'onerror='alert(1)", "https://example.com/a.png", None):
        assert "<img" not in img(bad, "x") and "href" not in ipfs_link(bad), bad
    shown = traits_html({"attributes": [{"trait_type": "<b>k</b>", "value": "<script>alert(1)</script>"}]})
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "&lt;b&gt;" in shown
    garbled = ModelInfo("0x" + "11" * 32, {"version": "<i>1</i>"}, {"output_shapes": "8x8", "task": "classification"})
    assert token_title(7, {"aigc_type": "classification", "attributes": 5}, {"outputs": "x"}, garbled) == \
        "Output — model v<i>1</i> #7"  # shown through esc(), like every title
    assert traits_html({"attributes": 5}) == "<span class=muted>none</span>"
    assert "&lt;/pre&gt;" in folded_html({"prompt": "</pre><script>"}, {"outputs": {"k": 1}, "shapes": 3})
    said = public(f"ipfs://{cid} fetched from the content store /srv/ws/.proofmint/content, via "
                  "http://127.0.0.1:8545/rpc")
    assert said == f"ipfs://{cid} fetched from the content store on the node, via http://127.0.0.1:8545/rpc"
