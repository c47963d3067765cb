"""``proofmint gateway``: a read-only IPFS HTTP gateway over a workspace's content store.

It serves ``GET``/``HEAD /ipfs/<CID>`` (the path-gateway form every IPFS gateway answers)
and nothing else: no write, no listing. Clients re-hash what they fetch (see
:class:`~proofmint.verifier.content.store.Source`), so this gateway is trusted for nothing; it only
makes one workspace's content reachable for another machine, in place of a pinning service.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from proofmint.errors import ContentError, UsageError
from proofmint.store import Workspace

from proofmint.verifier.content.store import ContentStore

DEFAULT_PORT = 8080
IMMUTABLE = "public, max-age=29030400, immutable"  # a CID's bytes never change


def media_type(path: Path) -> str:
    """What the bytes are, from their first bytes (content has no file name)."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"<svg"):
        return "image/svg+xml"
    if head[:1] in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


def app(ws: Workspace):
    from fastapi import FastAPI

    api = FastAPI(title="proofmint gateway", description="Read-only IPFS path gateway over a "
                  "proofmint workspace's content store.", docs_url=None, redoc_url=None)
    add_routes(api, ws)
    return api


def add_routes(api, ws: Workspace) -> None:
    """``GET``/``HEAD /ipfs/<CID>`` on a FastAPI app (the gateway's own, or the prover node's)."""
    from fastapi.responses import FileResponse, JSONResponse

    store = ContentStore(ws)

    @api.api_route("/ipfs/{cid}", methods=["GET", "HEAD"], include_in_schema=False)
    def content(cid: str):
        try:
            path = store.path(cid)
        except ContentError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if not path.is_file():
            return JSONResponse({"error": f"{cid} is not in this gateway's store"}, status_code=404)
        return FileResponse(path, media_type=media_type(path),
                            headers={"Cache-Control": IMMUTABLE, "X-Ipfs-Path": f"/ipfs/{cid}",
                                     "ETag": f'"{cid}"'})


class Gateway:
    """The gateway on 127.0.0.1 in a background thread, for the length of a ``with`` block."""

    def __init__(self, ws: Workspace, *, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        config = uvicorn.Config(app(ws), host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="proofmint-gateway", daemon=True)
        self.url = ""

    def __enter__(self) -> "Gateway":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise UsageError("the gateway did not start (is the port taken?) — pick another "
                                 "with --port")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def gateway(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
            workspace: str | Path | Workspace | None = None) -> None:
    """Serve the workspace's content store at ``http://HOST:PORT/ipfs/CID`` until interrupted."""
    import uvicorn

    ws = Workspace.resolve(workspace)
    uvicorn.run(app(ws), host=host, port=port, log_level="warning", lifespan="off")
