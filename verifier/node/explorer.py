"""The explorer: server-rendered HTML pages of the tokens, the models and the job queue.

A token page reads like a marketplace's (OpenSea, Etherscan, Story): a title from the model and
the output, the metadata's traits, the mint's transaction, block and time, the contract,
standards and chain, and a Verify button that runs every check of ``verify-asset`` in place.
Which tokens exist, and each one's mint, parent and children, come from the token's ``Minted``
events, read once and then only from the last block read: a page costs the RPC calls of what it
shows, never a scan of every token.

Every value on a page is escaped; pages are read-only (GET) and load nothing from outside the
node: the style and the one script are inline and pinned by a Content-Security-Policy (by their
hashes), images come from the node's own ``/ipfs/<CID>`` gateway. No server path reaches a page.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import hashlib
import html
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field

from proofmint.errors import ContentError, NotFoundError, ProofmintError, UsageError

PER_PAGE = 24  # tokens on an index page (``?per=`` asks for 1..MAX_PER_PAGE, like Etherscan's ``ps``)
MAX_PER_PAGE = 96
MAX_TOKEN_ID = 2**256 - 1
# ERC-165 interface ids the token page asks the contract about (the standards it states).
STANDARDS = {"ERC-721": "0x80ac58cd", "ERC-7007": None, "ERC-2981": "0x2a55205a"}

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f3ee;color:#1f2328;
line-height:1.45}
a{color:#1d4fa8}header{background:#1d2233;padding:12px 28px;display:flex;gap:22px;align-items:center}
header a{color:#e8ebf3;text-decoration:none}header a.brand{font-weight:700;font-size:18px;color:#fff}
main{padding:22px 28px 48px;max-width:1180px;margin:0 auto}h1{font-size:28px;margin:4px 0 6px}
h2{font-size:15px;text-transform:uppercase;letter-spacing:.04em;color:#555;margin:0 0 10px}
.sub{color:#5b6270;margin:0 0 14px}.muted{color:#6b7280}
.panel{background:#fff;border:1px solid #dedbd2;border-radius:10px;padding:16px 18px;margin:0 0 18px}
.token{display:grid;grid-template-columns:minmax(260px,420px) 1fr;gap:28px;align-items:start}
@media (max-width:800px){.token{grid-template-columns:1fr}}
.frame{background:#fff;border:1px solid #dedbd2;border-radius:10px;padding:10px;aspect-ratio:1;display:flex;
align-items:center;justify-content:center}
.frame img{width:100%;height:100%;object-fit:contain;image-rendering:pixelated}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:7px 18px;margin:0}dl.kv dt{color:#5b6270}
dl.kv dd{margin:0;overflow-wrap:anywhere}
.traits{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:10px}
.trait{background:#eef3fb;border:1px solid #c9d8f0;border-radius:8px;padding:8px 10px;text-align:center}
.trait .k{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#39598c}
.trait .v{font-weight:600;overflow-wrap:anywhere}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
button{font:inherit;cursor:pointer}
button.copy{border:1px solid #c8c5bb;background:#fff;border-radius:5px;padding:0 6px;margin-left:5px;
font-size:12px;color:#444}
button.copy.done{background:#dff3e4;border-color:#7cc08f}
.verify button{background:#1d2233;color:#fff;border:0;border-radius:7px;padding:9px 20px;font-weight:600}
.verify button:disabled{opacity:.6;cursor:wait}
.spinner{display:inline-block;width:14px;height:14px;border:2px solid #bbb;border-top-color:#1d2233;
border-radius:50%;animation:spin .8s linear infinite;vertical-align:-2px;margin-right:6px}
@keyframes spin{to{transform:rotate(360deg)}}.ok{color:#17663a}.bad{color:#b42318}
.verdict{font-weight:700;font-size:18px}table{border-collapse:collapse;width:100%;margin-top:10px}
td,th{border-bottom:1px solid #e6e3da;padding:6px 8px;text-align:left;vertical-align:top;font-size:14px}
th{color:#5b6270;font-weight:600}
details{background:#fff;border:1px solid #dedbd2;border-radius:10px;padding:10px 16px;margin:0 0 12px}
summary{cursor:pointer;font-weight:600}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;max-height:420px;overflow:auto;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dedbd2;border-radius:10px;overflow:hidden;text-decoration:none;
color:inherit;display:block}
.card:hover{border-color:#8aa4d6}
.card .thumb{aspect-ratio:1;background:#faf9f6;display:flex;align-items:center;justify-content:center;
border-bottom:1px solid #eee}
.card .thumb img{width:100%;height:100%;object-fit:contain;image-rendering:pixelated}
.card .body{padding:8px 10px 10px}.card .title{font-weight:600;font-size:14px}
.card .meta{font-size:12px;color:#6b7280}.pager{display:flex;gap:8px;align-items:center;margin:18px 0}
.pager a,.pager span{padding:4px 10px;border:1px solid #dedbd2;border-radius:6px;background:#fff;
text-decoration:none}
.pager .here{background:#1d2233;color:#fff;border-color:#1d2233}ul.plain{margin:4px 0;padding-left:18px}
"""

SCRIPT = """
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const t = document.createElement('textarea');
  t.value = text; document.body.appendChild(t); t.select(); document.execCommand('copy'); t.remove();
  return Promise.resolve();
}
function cell(row, text, cls) {
  const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; row.appendChild(td);
}
function showVerdict(v) {
  const word = document.getElementById('verdict');
  word.textContent = v.valid ? 'VALID' : 'INVALID'; word.className = 'verdict ' + (v.valid ? 'ok' : 'bad');
  const blocks = v.block_to !== v.block ? v.block + '\\u2013' + v.block_to : v.block;
  document.getElementById('verify-when').textContent = 'checked at block ' + blocks + ' of chain ' + v.chain_id +
    ', ' + v.checked_at + ', in ' + v.seconds + ' s: ' + v.checks.filter(c => c.ok).length + ' of ' +
    v.checks.length + ' checks passed';
  const body = document.getElementById('verify-checks'); body.replaceChildren();
  for (const c of v.checks) {
    const row = document.createElement('tr');
    cell(row, c.ok ? '\\u2713' : '\\u2717', c.ok ? 'ok' : 'bad'); cell(row, c.name); cell(row, c.detail);
    body.appendChild(row);
  }
}
async function runVerify(button) {
  const status = document.getElementById('verify-status'), result = document.getElementById('verify-result');
  const started = Date.now();
  const elapsed = status.querySelector('.elapsed');
  const tick = () => { elapsed.textContent = Math.round((Date.now() - started) / 1000) + ' s'; };
  button.disabled = true; result.hidden = true; status.hidden = false; tick();
  const timer = setInterval(tick, 500);
  try {
    const r = await fetch(button.dataset.url, {headers: {Accept: 'application/json'}});
    const v = await r.json();
    if (!r.ok) throw new Error(v.error || ('HTTP ' + r.status));
    showVerdict(v);
  } catch (err) {
    document.getElementById('verdict').textContent = '';
    document.getElementById('verify-checks').replaceChildren();
    document.getElementById('verify-when').textContent = 'could not verify: ' + err.message;
  } finally {
    clearInterval(timer); status.hidden = true; result.hidden = false; button.disabled = false;
  }
}
document.addEventListener('click', e => {
  const copy = e.target.closest('button.copy');
  if (copy) copyText(copy.dataset.copy).then(() => {
    copy.classList.add('done'); copy.textContent = 'copied';
    setTimeout(() => { copy.classList.remove('done'); copy.textContent = 'copy'; }, 1500);
  });
  const verify = e.target.closest('#verify');
  if (verify) runVerify(verify);
});
if (document.body.dataset.refresh) setTimeout(() => location.reload(), Number(document.body.dataset.refresh) * 1000);
"""


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Nothing loads from outside the node, and only this page's own style and script run.
CSP = (f"default-src 'none'; img-src 'self' data:; connect-src 'self'; style-src {_sha256_source(STYLE)}; "
       f"script-src {_sha256_source(SCRIPT)}; base-uri 'none'; form-action 'none'")
# An absolute filesystem path (not a URL's path: those follow a host or "scheme:/").
_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def listed(value) -> list:
    """A list from published JSON, or [] (a minter or registrant writes that JSON)."""
    return value if isinstance(value, list) else []


def mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def public(text: str) -> str:
    """A message as a page may show it: server paths (the workspace, the content store) cut out."""
    return _PATH.sub("on the node", str(text))


def layout(title: str, body: str, *, refresh: int | None = None) -> str:
    attrs = f" data-refresh={refresh}" if refresh else ""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)} — proofmint</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><link rel=icon href='data:,'>"
            f"<meta http-equiv=Content-Security-Policy content=\"{CSP}\"><style>{STYLE}</style></head>"
            f"<body{attrs}><header><a class=brand href='/'>proofmint</a><a href='/'>tokens</a>"
            f"<a href='/models'>models</a><a href='/queue'>job queue</a></header>"
            f"<main>{body}</main><script>{SCRIPT}</script></body></html>")


def error_page(status: int, message: str):
    """The explorer's 4xx/5xx page (an HTMLResponse): what went wrong and the way back."""
    from starlette.responses import HTMLResponse

    title = {400: "Bad request", 404: "Not found", 503: "The chain did not answer"}.get(status, "Cannot show this page")
    text = public(message)
    body = (f"<h1>{esc(title)}</h1><p class=sub id=error>{esc(text[:1].upper() + text[1:])}</p>"
            "<p><a href='/'>all tokens</a> · <a href='/models'>all models</a></p>")
    return HTMLResponse(layout(title, body), status_code=status)


def wants_page(request) -> bool:
    """A browser's GET outside the API and the gateway: it gets an HTML error page, not JSON."""
    path = request.url.path
    return (request.method == "GET" and "text/html" in request.headers.get("accept", "")
            and not path.startswith(("/api/", "/ipfs/", "/openapi")))


def short(value: str) -> str:
    value = str(value)
    return value if len(value) <= 14 else f"{value[:6]}…{value[-4:]}"


def copy_button(value: str) -> str:
    return f"<button class=copy type=button data-copy='{esc(value)}' aria-label='copy {esc(value)}'>copy</button>"


def copyable(value: str) -> str:
    """A hex value shortened to 0x1234…abcd (the full one in its title) with a copy button."""
    return f"<span class=mono title='{esc(value)}'>{esc(short(value))}</span>{copy_button(value)}"


def gateway_path(uri) -> str | None:
    """The node's /ipfs/<CID> for an ipfs:// URI; None for anything else. A minter writes the
    metadata, so its URIs are checked to be CIDs: '/ipfs/../tokens/1/verify' is not one."""
    from proofmint.verifier.content.store import check_cid

    cid = str(uri).removeprefix("ipfs://") if str(uri).startswith("ipfs://") else ""
    try:
        return "/ipfs/" + check_cid(cid)
    except ContentError:
        return None


def ipfs_link(uri) -> str:
    """ipfs://bafkre…dzcm, linked to the node's gateway, the full URI in its title and copy button."""
    path = gateway_path(uri)
    if path is None:
        return esc(uri or "—")
    return f"<a class=mono href='{path}' title='{esc(uri)}'>ipfs://{esc(short(path[6:]))}</a>{copy_button(uri)}"


def img(uri, alt: str) -> str:
    path = gateway_path(uri)
    return f"<img alt='{esc(alt)}' src='{path}'>" if path else "<span class=muted>no image</span>"


def kv(rows: list[tuple[str, str]]) -> str:
    """A definition list; values are already HTML (escape them with esc)."""
    return "<dl class=kv>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def utc(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def token_number(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,78}", text) or not 1 <= int(text) <= MAX_TOKEN_ID:
        raise UsageError(f"{text!r} is not a token id — token ids are whole numbers from 1")
    return int(text)


def model_number(text: str) -> str:
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", text):
        raise UsageError(f"{text!r} is not a model registration id — those are 0x and 64 hex digits")
    return text.lower()


def page_number(text: str, name: str, top: int) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= top:
        raise UsageError(f"?{name}={text} is out of range — give a whole number from 1 to {top}")
    return int(text)


VERIFY_PANEL = (
    "<div class='panel verify'><button id=verify type=button data-url='{url}'>Verify</button> "
    "<span class=muted>re-runs every check of <code>proofmint verify-asset</code> here: metadata, model, "
    "circuit and proof fetched by CID and re-hashed, the proof verified on-chain and locally, the model "
    "re-run, the content compared</span>"
    "<p id=verify-status hidden><span class=spinner></span>Fetching the content by CID, checking it against "
    "the chain, verifying the proof and re-running the model… <span class=elapsed></span></p>"
    "<div id=verify-result hidden><p><span id=verdict class=verdict></span> <span id=verify-when class=muted>"
    "</span></p><table><thead><tr><th></th><th>check</th><th>what it found</th></tr></thead>"
    "<tbody id=verify-checks></tbody></table></div></div>")


def table(head: list[str], rows: list[list[str]]) -> str:
    """A table in a panel; cells are already HTML (escape them with esc)."""
    return ("<div class=panel><table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead>"
            "<tbody>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table></div>")


def token_links(ids: list[int]) -> str:
    return ", ".join(f"<a href='/tokens/{t}'>#{t}</a>" for t in ids) or "none"


def traits_html(meta: dict) -> str:
    """The metadata's ``attributes``, as a marketplace shows them: one box per trait."""
    boxes = "".join(f"<div class=trait><div class=k>{esc(a.get('trait_type', ''))}</div>"
                    f"<div class=v>{esc(a.get('value', ''))}</div></div>"
                    for a in listed(meta.get("attributes")) if isinstance(a, dict))
    return f"<div class=traits>{boxes}</div>" if boxes else "<span class=muted>none</span>"


def royalty_html(receiver: str, bps: int, split: list[dict]) -> str:
    def payees(rows: list[dict]) -> str:
        return "<ul class=plain>" + "".join(
            f"<li>{copyable(r['payee'])} {r['bps'] / 100:.2f} %{payees(r['split']) if r.get('split') else ''}</li>"
            for r in rows) + "</ul>"

    return f"{bps / 100:.2f} % of a sale to {copyable(receiver)}{payees(split)}"


def segments_html(held: dict, link: str, packages: list[dict]) -> str:
    """A segmented model's token: its segments as the registry holds them (circuit, instances,
    verifier), each one's logrows from its published package, and how they are linked."""
    segs = held.get("segments") or []
    if not segs:
        return ""
    logrows = [mapping(p).get("logrows", "?") for p in packages] + ["?"] * len(segs)
    rows = [("segments", f"{len(segs)} linked segment proofs, {esc(link or '?')} links: the mint checked each on "
                         "its registered verifier, and every link between them, in one transaction")]
    rows += [(f"segment {i}", f"circuit {copyable(s['circuitHash'])} · logrows {esc(logrows[i])} · "
                              f"{esc(s['instanceCount'])} instances · verifier {copyable(s['verifier'])}")
             for i, s in enumerate(segs)]
    return f"<div class=panel id=segments><h2>Segments</h2>{kv(rows)}</div>"


def folded_html(meta: dict, outputs: dict) -> str:
    """The raw input, outputs and metadata, folded away."""
    values = listed(outputs.get("outputs"))
    count = sum(len(v) if isinstance(v, list) else 1 for v in values)
    return (f"<details><summary>Input (ERC-7007 prompt)</summary><pre>{esc(meta.get('prompt', '?'))}</pre></details>"
            f"<details><summary>Outputs ({count} values, shapes {esc(outputs.get('shapes', '?'))})</summary>"
            f"<pre>{esc(json.dumps(values))}</pre></details>"
            f"<details><summary>ERC-7007 metadata (JSON)</summary><pre>{esc(json.dumps(meta, indent=2))}</pre>"
            "</details>")


# ---- what the chain says: events, read incrementally ----

@dataclass(frozen=True)
class Mint:
    token_id: int
    model_id: str
    creator: str
    parent: int
    tx: str
    block: int


class EventLog:
    """One event of one of the deployment's contracts, read once and then from the last block
    read on; a chain that went back (a changed block hash, a lower head) is read again."""

    def __init__(self, contract: str, event: str):
        self.contract, self.event = contract, event
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._block, self._hash, self._logs = -1, None, []

    def read(self, d) -> list:
        w3 = d.chain.w3
        contract = getattr(d, self.contract)
        with self._lock:
            try:
                head = w3.eth.block_number
                if (self._key != (d.chain.chain_id, contract.address) or head < self._block
                        or (self._hash is not None and w3.eth.get_block(self._block)["hash"] != self._hash)):
                    self._key, self._block, self._hash, self._logs = (d.chain.chain_id, contract.address), -1, None, []
                if head > self._block:
                    event = getattr(contract.events, self.event)()
                    self._logs += event.get_logs(from_block=self._block + 1, to_block=head)
                    self._block, self._hash = head, w3.eth.get_block(head)["hash"]
            except Exception as exc:  # web3 raises many types: chain_error sorts them
                from proofmint.verifier.chain.client import chain_error

                raise chain_error(f"reading {self.event} events", exc, d.abi, d.chain.rpc_url) from None
            return list(self._logs)


def _hex(value) -> str:
    return "0x" + bytes(value).hex()


def batch_call(d, fns: list) -> list:
    """Contract calls as one JSON-RPC batch: a page's calls cost one round trip, not one each."""
    if not fns:
        return []
    try:
        with d.chain.w3.batch_requests() as batch:
            for fn in fns:
                batch.add(fn)
            return list(batch.execute())
    except Exception as exc:  # web3 raises many types: chain_error sorts them
        from proofmint.verifier.chain.client import chain_error

        raise chain_error("a batch of calls", exc, d.abi, d.chain.rpc_url) from None


# ---- what a model and a token are called ----

@dataclass
class ModelInfo:
    """A registration with what its published content says of the model (empty when unfetched)."""

    model_id: str
    reg: dict  # ModelRegistry.model: the registration's fields, owner, royalty receiver
    package: dict = field(default_factory=dict)  # the circuit's package.json
    training: dict = field(default_factory=dict)  # the training-data manifest

    @property
    def shapes(self) -> list[list[int]]:
        """The circuit's output shapes; [] when the published package doesn't say (or garbles it)."""
        shapes = listed(self.package.get("output_shapes"))
        ok = all(isinstance(s, list) and all(type(n) is int and n > 0 for n in s) for s in shapes)
        return shapes if ok else []

    @property
    def image(self) -> tuple[int, int, int] | None:
        from proofmint.verifier.content.render import image_dims

        return image_dims(self.shapes[0]) if len(self.shapes) == 1 else None

    @property
    def kind(self) -> str:
        shapes = self.shapes
        if self.image:
            return "image generator"
        if self.package.get("task") == "classification" and len(shapes) == 1:
            return f"{math.prod(shapes[0])}-class classifier"
        return "regressor" if shapes else "model"

    @property
    def version(self) -> str:
        v = str(self.reg.get("version") or "")
        return v if not v or v[0] in "vV" else f"v{v}"

    @property
    def name(self) -> str:
        """'image generator v1.0.0', '3-class classifier v2'."""
        return f"{self.kind} {self.version}".strip()

    @property
    def title(self) -> str:
        return self.name[:1].upper() + self.name[1:]

    @property
    def summary(self) -> str:
        parts = []
        if self.image:
            c, h, w = self.image
            parts.append(f"{h}×{w} {'grayscale' if c == 1 else 'RGB'} images")
        if self.training.get("dataset"):
            parts.append(f"trained on {self.training['dataset']}")
        return " · ".join(parts)


def output_label(meta: dict, outputs: dict, info: ModelInfo) -> str:
    """What the output is, in a few words: '8×8 image', 'Class 2', '0.734'."""
    values = [v for part in listed(outputs.get("outputs")) for v in (part if isinstance(part, list) else [part])]
    values = [v for v in values if type(v) in (int, float) and math.isfinite(v)]
    if meta.get("aigc_type") == "image" and info.image:
        return f"{info.image[1]}×{info.image[2]} image"
    if meta.get("aigc_type") == "classification" and values:
        return f"Class {max(range(len(values)), key=values.__getitem__)}"
    if values:
        top = max(range(len(values)), key=values.__getitem__)
        return f"{values[0]:.4g}" if len(values) == 1 else f"Top {values[top]:.4g} (output {top})"
    return "Output"


def token_title(token_id: int, meta: dict, outputs: dict, info: ModelInfo) -> str:
    """'8×8 image — image generator v1.0.0 #3', 'Class 2 — 3-class classifier v2 #5'."""
    return f"{output_label(meta, outputs, info)} — {info.name} #{token_id}"


@dataclass
class TokenCard:
    mint: Mint
    meta: dict
    title: str


class Explorer:
    """Reads what the pages show: the chain (through the node's RPC) and the content store."""

    def __init__(self, ws, rpc_url: str, queue):
        self.ws, self.rpc_url, self.queue = ws, rpc_url, queue
        self.mints = EventLog("token", "Minted")
        self.registrations = EventLog("registry", "ModelRegistered")
        # One verification at a time: each re-runs the model and the proof check, so a burst of
        # clicks queues instead of starving the provers.
        self._verifying = threading.Lock()

    def route(self, page_fn, status_of):
        """``page_fn`` as an HTML route: a ProofmintError becomes the explorer's error page."""
        from starlette.responses import HTMLResponse

        @functools.wraps(page_fn)
        def handler(*args, **kwargs):
            try:
                return HTMLResponse(page_fn(*args, **kwargs))
            except ProofmintError as exc:
                return error_page(status_of(exc), str(exc))

        return handler

    @contextlib.contextmanager
    def _chain(self, *, empty_ok: bool = False):
        """The deployment on the node's chain; with ``empty_ok``, None when nothing is deployed."""
        from proofmint.verifier.chain.client import connect
        from proofmint.verifier.chain.records import deployment

        with connect(rpc_url=self.rpc_url, workspace=self.ws) as c:
            try:
                d = deployment(c)
            except NotFoundError:
                if not empty_ok:
                    raise
                d = None
            yield d

    def _source(self):
        from proofmint.verifier.content.store import Source

        return Source.of(self.ws)

    def _json(self, uri) -> dict:
        try:
            doc = self._source().fetch_json(uri) if isinstance(uri, str) and uri else {}
        except ContentError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def _minted(self, d) -> dict[int, Mint]:
        return {e.args.tokenId: Mint(e.args.tokenId, _hex(e.args.modelId), e.args.creator, e.args.parent,
                                     _hex(e.transactionHash), e.blockNumber) for e in self.mints.read(d)}

    def _model_info(self, d, model_id: str) -> ModelInfo:
        reg = d.model(model_id)
        manifest = self._json(reg.get("metadataURI"))
        return ModelInfo(model_id, reg, self._json(mapping(manifest.get("files")).get("package")),
                         self._json(reg.get("trainingDataURI")))

    def _registered(self, d, model_id: str) -> tuple[ModelInfo, object]:
        """A registration and its ModelRegistered event; NotFoundError when there is none."""
        events = [e for e in self.registrations.read(d) if _hex(e.args.modelId) == model_id]
        if not events:
            raise NotFoundError(f"no model is registered as {model_id} in the registry on chain {d.chain.chain_id}")
        return self._model_info(d, model_id), events[-1]

    def _cards(self, d, mints: list[Mint]) -> list[TokenCard]:
        """Title and image of each token on a page: its tokenURI (one batch for the page), nothing more."""
        infos = {mid: self._model_info(d, mid) for mid in {m.model_id for m in mints}}
        cards = []
        for m, uri in zip(mints, batch_call(d, [d.token.functions.tokenURI(m.token_id) for m in mints])):
            meta = self._json(uri)
            outputs = self._json(mapping(meta.get("outputs")).get("uri"))
            cards.append(TokenCard(m, meta, token_title(m.token_id, meta, outputs, infos[m.model_id])))
        return cards

    @staticmethod
    def _grid(cards: list[TokenCard]) -> str:
        return "<div class=grid>" + "".join(
            f"<a class=card href='/tokens/{c.mint.token_id}'><div class=thumb>{img(c.meta.get('image'), c.title)}</div>"
            f"<div class=body><div class=title>{esc(c.title)}</div><div class=meta>block {c.mint.block} · "
            f"by <span title='{esc(c.mint.creator)}'>{esc(short(c.mint.creator))}</span>"
            + (f" · child of #{c.mint.parent}" if c.mint.parent else "") + "</div></div></a>"
            for c in cards) + "</div>"

    # ---- pages ----

    def index(self, page: str = "1", per: str = str(PER_PAGE), model: str = "") -> str:
        size = page_number(per, "per", MAX_PER_PAGE)
        n = page_number(page, "page", 999_999)
        only = model_number(model) if model else None
        with self._chain(empty_ok=True) as d:
            if d is None:
                return layout("Tokens", "<h1>Tokens</h1><p class=sub>No tokens yet: nothing is deployed on the "
                                        "node's chain.</p>")
            heading = self._registered(d, only)[0].title if only else "Tokens"
            mints = sorted((m for m in self._minted(d).values() if only in (None, m.model_id)),
                           key=lambda m: -m.token_id)
            last = max(1, math.ceil(len(mints) / size))
            if n > last:
                raise NotFoundError(f"page {n} is past the last page ({last}) of {len(mints)} tokens")
            cards = self._cards(d, mints[(n - 1) * size:n * size])
        if not mints:
            return layout(heading, f"<h1>{esc(heading)}</h1><p class=sub>No tokens minted yet.</p>")
        first = (n - 1) * size + 1
        query = (f"&per={size}" if size != PER_PAGE else "") + (f"&model={only}" if only else "")
        links = [f"<a href='/?page={n - 1}{query}' rel=prev>← newer</a>"] if n > 1 else []
        links += [f"<span class=here>page {n} of {last}</span>"]
        links += [f"<a href='/?page={n + 1}{query}' rel=next>older →</a>"] if n < last else []
        sub = f"{first}–{first + len(cards) - 1} of {len(mints)} tokens, newest first"
        return layout(heading, f"<h1>{esc(heading)}</h1><p class=sub id=range>{sub}</p>{self._grid(cards)}"
                             f"<nav class=pager>{''.join(links)}</nav>")

    def token(self, token_id: str) -> str:
        from proofmint.verifier.asset.inspect import lineage_of, split_of

        tid = token_number(token_id)
        with self._chain() as d:
            minted = self._minted(d)
            if tid not in minted:
                raise NotFoundError(f"there is no token #{tid} on chain {d.chain.chain_id}: "
                                    f"{len(minted)} tokens are minted on this contract")
            mint = minted[tid]
            rec = d.token_record(tid)
            interfaces = self._interfaces(d)
            fn = d.token.functions
            token_uri, owner, (receiver, bps), *supported = batch_call(d, [
                fn.tokenURI(tid), fn.ownerOf(tid), fn.royaltyInfo(tid, 10_000),
                *(fn.supportsInterface(bytes.fromhex(iid[2:])) for iid in interfaces.values())])
            standards = [name for name, yes in zip(interfaces, supported) if yes]
            split = split_of(d, receiver)
            info = self._model_info(d, rec["modelId"])
            held = d.segments(rec["modelId"])
            children = sorted(m.token_id for m in minted.values() if m.parent == tid)
            chain_id, contract = d.chain.chain_id, d.token.address
        meta = self._json(token_uri)
        outputs = self._json(mapping(meta.get("outputs")).get("uri"))
        title = token_title(tid, meta, outputs, info)
        model = f"<a href='/models/{esc(rec['modelId'])}'>{esc(info.title)}</a>"
        details = kv([
            ("contract", copyable(contract)), ("token id", esc(tid)),
            ("standard", esc(" + ".join(standards) or "none stated")), ("chain id", esc(chain_id)),
            ("minted", f"{esc(utc(rec['mintedAt']))}, block {mint.block}"), ("transaction", copyable(mint.tx)),
            ("owner", copyable(owner)), ("creator", copyable(rec["creator"])),
            ("royalty", royalty_html(receiver, bps, split)),
            ("metadata", ipfs_link(token_uri) + " <span class=muted>(ERC-7007)</span>"),
        ])
        provenance = kv([
            ("model", f"{model} {copyable(rec['modelId'])}"),
            ("input", f"{esc(meta.get('input_visibility', '?'))}; commitment {copyable(rec['inputCommitment'])}"),
            ("outputs hash", copyable(rec["outputsHash"])),
            ("proof", f"{ipfs_link(rec['proofURI'])} hash {copyable(rec['proofHash'])}"),
            ("batch", f"item {rec['batchIndex'] + 1} of {rec['batchCount']} in its proof"),
            ("parent", token_links([rec["parent"]] if rec["parent"] else [])
             + (f" <span class=muted>{esc(lineage_of(rec))}</span>" if rec["parent"] else "")),
            ("children", token_links(children)),
            ("prover", copyable(rec["prover"]) if int(rec["prover"], 16) else "<span class=muted>not named</span>"),
            ("proof error", f"{rec['errorPpm'] / 10_000:.4f} % of span <span class=muted>(the minter's statement, "
                            "recorded on-chain; Verify re-measures it)</span>"),
        ])
        body = (f"<div class=token><div><a class=frame href='{gateway_path(meta.get('image')) or '#'}'>"
                f"{img(meta.get('image'), title)}</a></div>"
                f"<div><p class=sub>{model}</p><h1 id=title>{esc(title)}</h1>"
                f"<p class=sub>owned by {copyable(owner)}</p>{VERIFY_PANEL.format(url=f'/tokens/{tid}/verify')}"
                f"<div class=panel><h2>Traits</h2>{traits_html(meta)}</div></div></div>"
                f"<div class=panel><h2>Details</h2>{details}</div>"
                f"<div class=panel><h2>Provenance</h2>{provenance}</div>{self._segments_html(info, held)}"
                f"{folded_html(meta, outputs)}")
        return layout(title, body)

    def _segments_html(self, info: ModelInfo, held: dict) -> str:
        """The Segments block (empty for a single circuit): each segment's package is fetched
        through the segmented manifest the registration names."""
        if not held["segments"]:
            return ""
        manifest = self._json(info.reg.get("metadataURI"))
        packages = [self._json(mapping(self._json(u).get("files")).get("package"))
                    for u in listed(manifest.get("segments"))]
        return segments_html(held, str(info.package.get("link") or ""), packages)

    @staticmethod
    def _interfaces(d) -> dict[str, str]:
        """ERC-165 ids; ERC-7007's is its two functions' selectors XORed (from the token's ABI)."""
        from eth_utils import function_signature_to_4byte_selector

        ids = dict(STANDARDS)
        xor = 0
        for sig in ("addAigcData(uint256,bytes,bytes,bytes)", "verify(bytes,bytes,bytes)"):
            xor ^= int.from_bytes(function_signature_to_4byte_selector(sig), "big")
        ids["ERC-7007"] = f"0x{xor:08x}"
        return ids

    def verify(self, token_id: str) -> dict:
        """``verify-asset`` of a token, as JSON for the token page, with the blocks it read."""
        from proofmint.verifier.asset.inspect import verify_asset

        tid = token_number(token_id)
        with self._verifying, self._chain() as d:
            if tid not in self._minted(d):
                raise NotFoundError(f"there is no token #{tid} on chain {d.chain.chain_id}")
            started, first = time.perf_counter(), d.chain.w3.eth.block_number
            try:
                verdict = verify_asset(tid, rpc_url=self.rpc_url, workspace=self.ws)
            except ProofmintError as exc:  # the same error, without the node's paths
                raise type(exc)(public(str(exc))) from None
            last = d.chain.w3.eth.block_number
            return {"token_id": tid, "valid": verdict.valid, "chain_id": d.chain.chain_id,
                    "block": first, "block_to": last, "seconds": round(time.perf_counter() - started, 1),
                    "checked_at": utc(int(time.time())),
                    "checks": [{"name": name, "ok": c.ok, "detail": public(c.detail)}
                               for name, c in verdict.checks.items()]}

    def models(self) -> str:
        with self._chain(empty_ok=True) as d:
            if d is None:
                return layout("Models", "<h1>Models</h1><p class=sub>No models yet: nothing is deployed on the "
                                        "node's chain.</p>")
            counts: dict[str, int] = {}
            for m in self._minted(d).values():
                counts[m.model_id] = counts.get(m.model_id, 0) + 1
            infos = [(self._model_info(d, _hex(e.args.modelId)), e.blockNumber) for e in self.registrations.read(d)]
        rows = [[f"<a href='/models/{esc(i.model_id)}'>{esc(i.title)}</a><div class=muted>{esc(i.summary)}</div>",
                 copyable(i.model_id), copyable(i.reg["owner"]), str(block),
                 f"<a href='/?model={esc(i.model_id)}'>{counts.get(i.model_id, 0)}</a>"]
                for i, block in sorted(infos, key=lambda x: -x[1])]
        listing = table(["model", "registration", "owner", "block", "tokens"], rows) if rows else \
            "<p>No models registered yet.</p>"
        return layout("Models", "<h1>Models</h1><p class=sub>Every registration in the model registry, newest "
                                f"first.</p>{listing}")

    def model(self, model_id: str) -> str:
        from proofmint.verifier.asset.inspect import split_of

        mid = model_number(model_id)
        with self._chain() as d:
            info, ev = self._registered(d, mid)
            mints = sorted((m for m in self._minted(d).values() if m.model_id == mid), key=lambda m: -m.token_id)
            cards = self._cards(d, mints[:PER_PAGE])
            split = split_of(d, info.reg["royaltyReceiver"])
            parent = info.reg["parentModel"]
            parent_info = self._model_info(d, parent) if int(parent, 16) else None
        m, lic = info.reg, info.reg["license"]
        training = info.training
        terms = [f"commercial use {'allowed' if lic['commercialUse'] else 'not allowed'}",
                 f"derivatives {'allowed' if lic['derivativesAllowed'] else 'not allowed'}",
                 f"attribution {'required' if lic['attributionRequired'] else 'not required'}",
                 f"a derivative's parent gets {lic['parentShareBps'] / 100:.2f} % of its royalty",
                 f"a token's prover gets {lic['proverShareBps'] / 100:.2f} % of its royalty"]
        details = kv([
            ("registration", copyable(mid)), ("version", esc(m["version"] or "—")), ("owner", copyable(m["owner"])),
            ("registered", f"block {ev.blockNumber}, transaction {copyable(_hex(ev.transactionHash))}"),
            ("model (ONNX)", ipfs_link(m["modelURI"]) + " sha256 " + copyable(m["onnxHash"])),
            ("circuit", copyable(m["circuitHash"]) + " " + ipfs_link(m["metadataURI"])),
            ("circuit package", esc(f"{info.kind}; input {info.package.get('input_shape')} "
                                    f"({mapping(info.package.get('visibility')).get('input', '?')}), outputs "
                                    f"{info.package.get('output_shapes')}") if info.package else "not fetched"),
            ("verifier", copyable(m["verifier"]) + (" (reusable, with its VKA)" if int(m["vkaDigest"], 16)
                                                    else " (dedicated)")),
            ("training data", (esc(training.get("dataset", "")) + " " if training else "")
             + (f"Merkle root {copyable(m['trainingDataRoot'])} {ipfs_link(m['trainingDataURI'])}"
                if int(m["trainingDataRoot"], 16) else "not committed")),
            ("parent model", f"<a href='/models/{esc(parent)}'>{esc(parent_info.title)}</a>" if parent_info
             else "none"),
            ("license", "<ul class=plain>" + "".join(f"<li>{esc(t)}</li>" for t in terms) + "</ul>"
             + (f" {ipfs_link(m['licenseURI'])}" if m["licenseURI"] else "")),
            ("royalty", royalty_html(m["royaltyReceiver"], m["royaltyBps"], split)),
        ])
        more = f"<p><a href='/?model={esc(mid)}'>all {len(mints)} tokens →</a></p>" if len(mints) > len(cards) else ""
        tokens = self._grid(cards) + more if cards else "<p class=muted>No tokens minted yet.</p>"
        body = (f"<h1 id=title>{esc(info.title)}</h1><p class=sub>{esc(info.summary)}</p>"
                f"<div class=panel><h2>Registration</h2>{details}</div>"
                f"<div class=panel><h2>Tokens ({len(mints)})</h2>{tokens}</div>")
        return layout(info.title, body)

    def queue_page(self) -> str:
        jobs = self.queue.jobs()
        rows = [[f"<span class=mono>{esc(j.id)}</span>", esc(j.status), esc(utc(int(j.created))),
                 esc(" · ".join(f"{k} {v}" for k, v in j.progress.items() if v)), copyable(j.circuit),
                 "yes" if j.mint else "no", token_links([t for i in j.items for t in i.tokens])]
                for j in jobs]
        active = any(j.status in ("queued", "running") for j in jobs)
        listing = table(["job", "status", "submitted", "items", "circuit", "mint", "tokens"], rows) if rows else \
            "<p>No jobs.</p>"
        note = "Refreshes every 5 s while jobs run." if active else "Nothing is running."
        return layout("Job queue", f"<h1>Job queue</h1><p class=sub>{note}</p>{listing}",
                      refresh=5 if active else None)
