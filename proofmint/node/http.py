"""The node's HTTP side (FastAPI): the job API, the explorer pages, the content gateway.

Submitting work costs money (proving time, gas), so it needs the bearer token; reading (job
status, explorer, ``/ipfs/<CID>``) needs none and changes nothing. Bad requests get a 4xx with
the CLI's one-line message, never a traceback.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from proofmint.errors import (ChainError, InvalidInputError, InvalidModelError, NotFoundError,
                              ProofmintError, UsageError)

MAX_BODY = 4 << 20  # bytes of a request body
MAX_INPUTS = 1_000  # inputs in one job
RETRY_AFTER_S = 10


class JobRequest(BaseModel):
    """``POST /api/jobs``: what to prove, for whom, and whether to mint."""

    model_config = ConfigDict(extra="forbid")
    circuit: str = Field(description="circuit id (or 8+ character prefix)")
    inputs: list[Any] | None = Field(None, description="inputs: each a flat list of numbers, or "
                                                         "ezkl's {\"input_data\": [[...]]}")
    input: Any = Field(None, description="one input (instead of `inputs`)")
    creator: str | None = Field(None, description="who receives the tokens (default: the node's signer)")
    mint: bool = Field(False, description="mint each verified inference as a token")


def status_of(exc: ProofmintError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ChainError):
        return 503
    if isinstance(exc, (UsageError, InvalidInputError, InvalidModelError)):
        return 400
    return 422


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before it is read
    whole (by its Content-Length, or while a chunked body streams in)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = f'{{"error": "the request body is over {limit} bytes — send fewer inputs per job"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(node, token: str, *, max_queue: int = 1_000):
    """The ASGI app of a running :class:`~proofmint.node.service.Node`."""
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from proofmint.models.onnx_model import check_input
    from proofmint.prover.inputs import check_range
    from proofmint.verifier.gateway import add_routes

    from .explorer import Explorer

    explorer = Explorer(node.ws, node.rpc_url, node.queue)
    api = FastAPI(title="proofmint prover node",
                  description="Submit inference jobs (a circuit, inputs, a creator): each input is proven "
                              "with EZKL, verified, and optionally minted as a provenance token. "
                              "POST needs `Authorization: Bearer <token>` (the node's token file).",
                  docs_url=None, redoc_url=None)  # Swagger/ReDoc pages load from a CDN: /openapi.json is local

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @api.exception_handler(ProofmintError)
    async def _proofmint_error(request: Request, exc: ProofmintError):
        return error(status_of(exc), str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error(400, f"bad request: {where}: {first.get('msg', 'invalid')} — see /openapi.json")

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    def authorized(authorization: str | None = Header(None)) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not authorization.startswith("Bearer ") or \
                not hmac.compare_digest(given.encode(), token.encode()):
            raise StarletteHTTPException(401, "a valid `Authorization: Bearer <token>` header is needed to "
                                              "submit jobs (the token is in the node's token file)",
                                         headers={"WWW-Authenticate": "Bearer"})

    def _inputs(req: JobRequest, pkg) -> list[list[float]]:
        from proofmint import ezkl_layer

        raw = req.inputs if req.inputs is not None else ([req.input] if req.input is not None else [])
        if not raw:
            raise UsageError("a job needs `inputs` (a list) or `input`")
        if len(raw) > MAX_INPUTS:
            raise UsageError(f"a job holds at most {MAX_INPUTS} inputs, not {len(raw)} — split it")
        out = []
        for i, doc in enumerate(raw):
            where = f"input {i}"
            values = ezkl_layer.parse_input(doc, pkg.input_sizes, where)[0] if isinstance(doc, dict) else doc
            x = check_input(tuple(pkg.input_shape), values, where)
            check_range(x, pkg.input_range, where)
            out.append(x.ravel().tolist())
        return out

    @api.post("/api/jobs", status_code=202, dependencies=[Depends(authorized)],
              summary="Queue an inference job", response_description="the job id, at once")
    def submit(req: JobRequest):
        pkg = node.package(req.circuit)
        if req.creator is not None:
            from eth_utils import is_address

            if not is_address(req.creator):
                raise UsageError(f"creator {req.creator!r} is not an address")
        inputs = _inputs(req, pkg)
        job = node.queue.submit(pkg.circuit_id, inputs, req.creator, req.mint, max_queue)
        if job is None:
            return error(429, f"the queue is full ({max_queue} items pending) — retry later",
                         {"Retry-After": str(RETRY_AFTER_S)})
        return {"job": job, "items": len(inputs), "status": f"/api/jobs/{job}"}

    @api.get("/api/jobs/{job_id}", summary="A job's status, progress, bundles and tokens")
    def job_status(job_id: str):
        job = node.queue.job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} on this node")
        out = job.to_dict()
        for item in out["items"]:
            item["bundle_url"] = f"/api/jobs/{job_id}/items/{item['idx']}/bundle" if item["bundle"] else None
            item.pop("bundle")
        return out

    @api.get("/api/jobs/{job_id}/items/{idx}/bundle", summary="An item's proof bundle")
    def bundle(job_id: str, idx: int):
        job = node.queue.job(job_id)
        items = [i for i in (job.items if job else []) if i.idx == idx and i.bundle]
        if not items:
            raise NotFoundError(f"job {job_id} has no proven item {idx}")
        return FileResponse(items[0].bundle, media_type="application/json")

    @api.get("/api/health", summary="Liveness, queue depth, last chain error")
    def health():
        return {"ok": True, "pending": node.queue.pending(), "recovered_at_start": node.recovered,
                "rpc_url": node.rpc_url, "last_error": node.last_error}

    # ---- explorer (read-only): each page's parameters are its method's ----
    for path, page in (("/", explorer.index), ("/tokens/{token_id}", explorer.token),
                       ("/tokens/{token_id}/verify", explorer.verify), ("/models", explorer.models),
                       ("/models/{model_id}", explorer.model), ("/queue", explorer.queue_page)):
        api.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)

    add_routes(api, node.ws)
    return BodyLimit(api)
