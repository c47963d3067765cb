"""The explorer: server-rendered HTML pages of the tokens, the models and the job queue.

Every value on a page is escaped; pages are read-only (GET) and need nothing from the internet:
styles are inline, images come from the node's own ``/ipfs/<CID>`` gateway.
"""

from __future__ import annotations

import contextlib
import html
import json
from dataclasses import dataclass

from proofmint.errors import ContentError, ProofmintError

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0;background:#f6f4ee;color:#222}
header{background:#223;color:#fff;padding:10px 24px}header a{color:#fff;margin-right:18px;text-decoration:none}
main{padding:16px 24px;max-width:1100px}table{border-collapse:collapse;margin:8px 0 18px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#e8e4d8}code{font-size:12px;word-break:break-all}.ok{color:#161}.bad{color:#a11}
img.asset{image-rendering:pixelated;border:1px solid #999;max-width:480px}img.thumb{width:48px;height:48px;image-rendering:pixelated}
.button{display:inline-block;background:#223;color:#fff;padding:6px 14px;border-radius:4px;text-decoration:none}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)} — proofmint</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><header><a href='/'><b>proofmint</b></a><a href='/'>tokens</a><a href='/models'>models</a>"
            f"<a href='/queue'>job queue</a></header><main><h1>{esc(title)}</h1>{body}</main></body></html>")


def table(rows: list[tuple[str, str]]) -> str:
    """A two-column table; values are already HTML (escape them with esc)."""
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def grid(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def code(value) -> str:
    return f"<code>{esc(value)}</code>"


def cid_img(uri: str | None, cls: str = "asset", alt: str = "rendered output") -> str:
    if not uri or not str(uri).startswith("ipfs://"):
        return "(no image)"
    return f"<img class={cls} alt='{esc(alt)}' src='/ipfs/{esc(uri.removeprefix('ipfs://'))}'>"


@dataclass
class TokenRow:
    token_id: int
    record: dict
    owner: str
    metadata: dict


class Explorer:
    """Reads what the pages show: the chain (through the node's RPC) and the content store."""

    def __init__(self, ws, rpc_url: str, queue):
        self.ws, self.rpc_url, self.queue = ws, rpc_url, queue

    @contextlib.contextmanager
    def _chain(self):
        from proofmint.verifier.client import connect
        from proofmint.verifier.records import deployment

        with connect(rpc_url=self.rpc_url, workspace=self.ws) as c:
            yield deployment(c)

    def _metadata(self, d, token_id: int) -> dict:
        from proofmint.verifier.content import Source

        try:
            return Source.of(self.ws).fetch_json(d.chain.call(d.token.functions.tokenURI(token_id), d.abi))
        except ContentError:
            return {}

    def tokens(self, d) -> list[TokenRow]:
        total = d.chain.call(d.token.functions.totalMinted(), d.abi)
        return [TokenRow(t, d.token_record(t), d.chain.call(d.token.functions.ownerOf(t), d.abi),
                         self._metadata(d, t)) for t in range(total, 0, -1)]

    # ---- pages ----

    def index(self) -> str:
        try:
            with self._chain() as d:
                rows = self.tokens(d)
        except ProofmintError as exc:
            return page("Tokens", f"<p>{esc(exc)}</p>")
        body = grid(["token", "image", "type", "model", "creator", "parent"], [
            [f"<a href='/tokens/{r.token_id}'>#{r.token_id}</a>", cid_img(r.metadata.get("image"), "thumb"),
             esc(r.metadata.get("aigc_type", "?")),
             f"<a href='/models/{esc(r.record['modelId'])}'>{code(r.record['modelId'][:18] + '…')}</a>",
             code(r.record["creator"]),
             f"<a href='/tokens/{r.record['parent']}'>#{r.record['parent']}</a>" if r.record["parent"] else "—"]
            for r in rows]) if rows else "<p>No tokens minted yet.</p>"
        return page("Tokens", body)

    def token(self, token_id: int) -> str:
        from proofmint.verifier.content import Source
        from proofmint.verifier.inspect import split_of

        with self._chain() as d:
            rec = d.token_record(token_id)
            token_uri = d.chain.call(d.token.functions.tokenURI(token_id), d.abi)
            meta = self._metadata(d, token_id)
            owner = d.chain.call(d.token.functions.ownerOf(token_id), d.abi)
            receiver, bps = d.chain.call(d.token.functions.royaltyInfo(token_id, 10_000), d.abi)
            split = split_of(d, receiver)
            children = [r.token_id for r in self.tokens(d) if r.record["parent"] == token_id]
        try:
            outputs = Source.of(self.ws).fetch_json(meta["outputs"]["uri"])["outputs"]
        except (ContentError, KeyError, TypeError):
            outputs = "(not available)"
        split_rows = "".join(f"<li>{code(s['payee'])}: {s['bps'] / 100:.2f} %"
                             + ("<ul>" + "".join(f"<li>{code(t['payee'])}: {t['bps'] / 100:.2f} %</li>"
                                                 for t in s.get("split", [])) + "</ul>" if s.get("split") else "")
                             + "</li>" for s in split)
        lineage = (f"parent <a href='/tokens/{rec['parent']}'>#{rec['parent']}</a>" if rec["parent"] else "no parent")
        lineage += "; children " + (", ".join(f"<a href='/tokens/{c}'>#{c}</a>" for c in children) or "none")
        body = (f"<p>{cid_img(meta.get('image'))}</p>"
                f"<p><a class=button id=verify href='/tokens/{token_id}/verify'>Verify</a> runs every check of "
                f"<code>proofmint verify-asset {token_id}</code></p>"
                + table([("name", esc(meta.get("name", "?"))), ("owner", code(owner)),
                         ("model", f"<a href='/models/{esc(rec['modelId'])}'>{code(rec['modelId'])}</a>"),
                         ("input commitment", code(rec["inputCommitment"])),
                         ("prompt", code(meta.get("prompt", "?"))),
                         ("outputs", code(json.dumps(outputs)[:2000])),
                         ("outputs hash", code(rec["outputsHash"])), ("proof hash", code(rec["proofHash"])),
                         ("proof", code(rec["proofURI"])),
                         ("token URI (ERC-7007 metadata)",
                          f"<a href='/ipfs/{esc(token_uri.removeprefix('ipfs://'))}'>{code(token_uri)}</a>"),
                         ("royalty", f"{bps / 100:.2f} % of a sale, to {code(receiver)}<ul>{split_rows}</ul>"),
                         ("lineage", lineage), ("creator", code(rec["creator"]))]))
        return page(f"Token #{token_id}", body)

    def verify(self, token_id: int) -> str:
        from proofmint.verifier.inspect import verify_asset

        verdict = verify_asset(token_id, rpc_url=self.rpc_url, workspace=self.ws)
        rows = [[f"<span class={'ok' if c.ok else 'bad'}>{'✓' if c.ok else '✗'}</span>", esc(name), esc(c.detail)]
                for name, c in verdict.checks.items()]
        word = "<b class=ok id=verdict>VALID</b>" if verdict.valid else "<b class=bad id=verdict>INVALID</b>"
        return page(f"Token #{token_id}: verify-asset",
                    f"<p>Verdict: {word} — <a href='/tokens/{token_id}'>back to the token</a></p>"
                    + grid(["", "check", "what it found"], rows))

    def models(self) -> str:
        with self._chain() as d:
            seen = {}
            for r in self.tokens(d):
                seen.setdefault(r.record["modelId"], 0)
                seen[r.record["modelId"]] += 1
            for entry in d.record.get("verifiers", {}).values():
                seen.setdefault(entry["model_id"], 0)
        return page("Models", grid(["registration", "tokens"], [
            [f"<a href='/models/{esc(m)}'>{code(m)}</a>", str(n)] for m, n in seen.items()]))

    def model(self, model_id: str) -> str:
        from proofmint.verifier.inspect import split_of

        with self._chain() as d:
            m = d.model(model_id)
            tokens = [r.token_id for r in self.tokens(d) if r.record["modelId"] == model_id]
            split = split_of(d, m["royaltyReceiver"])
        lic = m["license"]
        body = table([
            ("owner", code(m["owner"])), ("version", esc(m["version"])),
            ("model (ONNX)", code(m["modelURI"]) + f" sha256 {code(m['onnxHash'])}"),
            ("circuit", code(m["circuitHash"]) + " " + code(m["metadataURI"])),
            ("training data", f"Merkle root {code(m['trainingDataRoot'])}, manifest {code(m['trainingDataURI'] or '—')}"),
            ("parent model", code(m["parentModel"])),
            ("license", esc(f"commercial use {'yes' if lic['commercialUse'] else 'no'}, derivatives "
                            f"{'yes' if lic['derivativesAllowed'] else 'no'}, attribution "
                            f"{'required' if lic['attributionRequired'] else 'not required'}, parent share "
                            f"{lic['parentShareBps'] / 100:.2f} %") + (f" — {code(m['licenseURI'])}" if m["licenseURI"] else "")),
            ("royalty", f"{m['royaltyBps'] / 100:.2f} % of a sale, split: " + ", ".join(
                f"{code(s['payee'])} {s['bps'] / 100:.2f} %" for s in split)),
            ("verifier", code(m["verifier"])),
            ("tokens", ", ".join(f"<a href='/tokens/{t}'>#{t}</a>" for t in tokens) or "none"),
        ])
        return page("Model", body)

    def queue_page(self) -> str:
        rows = [[code(j.id), esc(j.status), esc(" ".join(f"{k} {v}" for k, v in j.progress.items() if v)),
                 code(j.circuit[:16]), esc("yes" if j.mint else "no"),
                 ", ".join(f"<a href='/tokens/{t}'>#{t}</a>" for i in j.items for t in i.tokens) or "—"]
                for j in self.queue.jobs()]
        body = ("<p>Refreshes every 5 s.</p><script>setTimeout(()=>location.reload(),5000)</script>"
                + (grid(["job", "status", "items", "circuit", "mint", "tokens"], rows) if rows else "<p>No jobs.</p>"))
        return page("Job queue", body)
