"""An OpenAI-compatible HTTP API over the assistant, so chat clients and scripts written for OpenAI can use it.

    python -m rag serve [--host 127.0.0.1] [--port 8000] [--collection NAME=CONFIG ...] [--api-key KEY]

`POST /v1/chat/completions` takes the OpenAI request shape: the last user message is the question, earlier turns
are the conversation (a follow-up is rewritten to stand alone, as in the app). The reply's
`choices[0].message.content` is the answer with its [n] markers followed by the numbered sources as plain text,
so any client shows them; `citations`, `refused` and, after a refusal, `closest` ride along as extra fields
that OpenAI clients ignore.
`stream: true` sends Server-Sent Events in OpenAI's chunk format. The answer is streamed once it is checked, not
the model's draft tokens, which the check may replace. `GET /v1/models` lists the collections (one config, corpus
and index each; the request's `model` picks one), `POST /v1/search` returns hits, `GET /health` says it is up.
`POST /v1/documents` (multipart, one or more "file" fields) adds documents to a collection and indexes them;
`DELETE /v1/documents/{name}` removes one (Assistant.add_documents / remove_document).

Errors use OpenAI's JSON shape with the matching status: 400 bad request or refused document, 401 wrong or
missing key, 404 unknown model, document or path, 413 question or body too long, 503 model not ready. No input
makes the server stop. Requests for the one local chat model queue the way the app's do (the generator holds a
lock).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations (Request) at run time.
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .assistant import Assistant
from .errors import DocumentNotFound, DocumentRejected, IndexLoadError, ModelError, RagError
from .types import CorpusUpdate

MAX_BODY_BYTES = 1_000_000  # a chat request is a few kB; anything near this is a mistake or an attack
DOCUMENTS = "/v1/documents"
MAX_UPLOAD_FILES = 100  # in one POST /v1/documents
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApiError(Exception):
    """An error to send in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def check_binding(host: str, api_key: str | None) -> None:
    """Another address than this machine's own needs an API key: anyone on the network could ask otherwise."""
    if host not in LOOPBACK and not api_key:
        raise RagError(
            f"Serving on {host} makes the API reachable from other machines; set an API key with --api-key "
            "or the RAG_API_KEY environment variable (clients send it as 'Authorization: Bearer <key>'), "
            "or keep the default --host 127.0.0.1."
        )


def _error_for(exc: Exception) -> ApiError:
    """A library error as the HTTP error a client can act on."""
    message = str(exc)
    if isinstance(exc, DocumentNotFound):
        return ApiError(404, message, code="document_not_found")
    if isinstance(exc, DocumentRejected):
        return ApiError(400, message, code="document_rejected")
    if isinstance(exc, ModelError | IndexLoadError):
        return ApiError(503, message, kind="server_error", code="not_ready")
    if isinstance(exc, RagError) and "characters long" in message:
        return ApiError(413, message, code="question_too_long")
    return ApiError(400, message)


def _question_and_history(messages: Any) -> tuple[str, list[dict]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.", param="messages")
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "developer"):
            raise ApiError(400, f"messages[{i}] needs a role of user, assistant or system.", param="messages")
        turns.append({"role": message["role"], "content": _text_of(message.get("content"), i)})
    if turns[-1]["role"] != "user":
        raise ApiError(400, "The last message must be the user's question.", param="messages")
    history = [t for t in turns[:-1] if t["role"] in ("user", "assistant")]
    return turns[-1]["content"], history


def _text_of(content: Any, i: int) -> str:
    """A message's text: a string, or OpenAI's list of parts of which the text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts:
            return "\n".join(parts)
    raise ApiError(400, f"messages[{i}].content must be text (or a list of text parts).", param="messages")


def _content(answer) -> str:
    """The message content: the answer with its [n] markers, then the numbered sources as plain text."""
    return answer.to_markdown().rstrip("\n")


def _grounding(answer) -> dict:
    """The extra fields OpenAI clients ignore: the structured citations, whether the question was refused, and
    after a refusal the sentences closest to an answer (never support; the content lists them too)."""
    return {
        "citations": [c.to_dict() for c in answer.citations],
        "refused": answer.refused,
        "closest": [e.to_dict() for e in answer.closest] if answer.refused else [],
    }


def _answer_body(answer, model: str, completion_id: str, created: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _content(answer)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        **_grounding(answer),
        "confidence": answer.confidence,
        "lang": answer.lang,
    }


def _chunk(completion_id: str, created: int, model: str, delta: dict, finish: str | None, **extra) -> str:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def create_app(collections: dict[str, Assistant], api_key: str | None = None):
    """The FastAPI application serving `collections` (name -> Assistant; the first is the default model)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if not collections:
        raise RagError("The API needs at least one collection (a config with a corpus and an index).")
    default = next(iter(collections))
    # An upload carries documents: in all, one request may hold as much as the largest [corpus] max_file_mb.
    max_upload_bytes = max(int(a.config.corpus.max_file_mb * 1024 * 1024) for a in collections.values())
    app = FastAPI(title="News assistant (OpenAI-compatible)", docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(ApiError(400, f"Bad request: {exc.errors()[:3]}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        error = ApiError(500, f"Internal error: {type(exc).__name__}: {exc}", kind="server_error")
        return JSONResponse(error.body(), status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        try:
            sent = request.headers.get("authorization", "")
            if api_key and request.url.path != "/health" and not hmac.compare_digest(sent, f"Bearer {api_key}"):
                raise ApiError(
                    401,
                    "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                    kind="authentication_error",
                    code="invalid_api_key",
                )
            length = request.headers.get("content-length")
            upload = request.url.path == DOCUMENTS and request.method == "POST"
            limit = max_upload_bytes + MAX_BODY_BYTES if upload else MAX_BODY_BYTES  # room for the form's parts
            if length and length.isdigit() and int(length) > limit:
                hint = "; send the documents in several requests, each within [corpus] max_file_mb" if upload else ""
                raise ApiError(413, f"The request body is larger than {limit:,} bytes{hint}.")
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return await call_next(request)

    def assistant_for(model: Any) -> tuple[str, Assistant]:
        name = default if model in (None, "") else model
        if not isinstance(name, str) or name not in collections:
            raise ApiError(
                404,
                f"The model {name!r} does not exist; GET /v1/models lists them: {', '.join(collections)}.",
                param="model",
                code="model_not_found",
            )
        return name, collections[name]

    async def json_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON ({exc}).") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "collections": list(collections)}

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "rag"} for name in collections],
        }

    @app.post("/v1/search")
    async def search(request: Request) -> dict:
        body = await json_body(request)
        name, assistant = assistant_for(body.get("model"))
        query, k, filters = body.get("query"), body.get("k", 5), body.get("filters") or {}
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100:
            raise ApiError(400, "'k' must be an integer from 1 to 100.", param="k")
        if not isinstance(filters, dict) or set(filters) - {"lang", "source", "date_from", "date_to"}:
            raise ApiError(400, "'filters' may hold lang, source, date_from and date_to.", param="filters")
        try:
            hits = assistant.search(query, k, **filters)
        except RagError as exc:
            raise _error_for(exc) from exc
        return {"object": "list", "model": name, "data": [hit.to_dict() for hit in hits]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await json_body(request)
        name, assistant = assistant_for(body.get("model"))
        question, history = _question_and_history(body.get("messages"))
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.get("stream"):
            answer = await _run(lambda: assistant.answer(question, history))
            return JSONResponse(_answer_body(answer, name, completion_id, created))
        # Validate before the 200 of a stream is sent: a bad question must still get an error status.
        answer_events = _answer_events(assistant, question, history)
        await _run(lambda: next(answer_events))

        def events() -> Iterator[str]:  # Starlette runs a plain iterator in a worker thread
            yield _chunk(completion_id, created, name, {"role": "assistant", "content": ""}, None)
            try:
                answer = next(answer_events)
            except RagError as exc:  # after the 200 was sent: the error travels as the stream's last event
                yield f"data: {json.dumps(_error_for(exc).body(), ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
                return
            yield _chunk(completion_id, created, name, {"content": _content(answer)}, None)
            yield _chunk(completion_id, created, name, {}, "stop", **_grounding(answer))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post(DOCUMENTS)
    async def add_documents(request: Request) -> dict:
        form = await request.form(max_files=MAX_UPLOAD_FILES)
        try:
            name, assistant = assistant_for(form.get("model"))
            files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
            if not files:
                raise ApiError(
                    400, "Send the documents as multipart/form-data, each in a field named 'file'.", param="file"
                )
            uploads = [(item.filename or "document", item.file) for item in files]
            update = await _run(lambda: assistant.add_documents(uploads))
        finally:
            await form.close()
        if not update.added:  # all refused: nothing changed, so the request failed
            raise ApiError(400, " ".join(r.reason for r in update.rejected), param="file", code="document_rejected")
        return {"object": "corpus.update", "model": name, **update.to_dict()}

    @app.delete(DOCUMENTS + "/{source:path}")
    async def remove_document(source: str, request: Request) -> dict:
        name, assistant = assistant_for(request.query_params.get("model"))
        summary = await _run(lambda: assistant.remove_document(source))
        return {"object": "corpus.update", "model": name, **CorpusUpdate(removed=(source,), summary=summary).to_dict()}

    return app


def _answer_events(assistant: Assistant, question: str, history: list[dict]) -> Iterator[Any]:
    """Yields None once the assistant accepted the question (its first event), then the final Answer. A
    question the assistant rejects raises at the first step, before any event."""
    stream = assistant.stream(question, history)
    event = next(stream)
    yield None
    final = event.answer if event.kind == "answer" else None
    for event in stream:
        if event.kind == "answer":
            final = event.answer
    yield final


async def _run(fn):
    """Run blocking library work in a worker thread; library errors become API errors."""
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(fn)
    except RagError as exc:
        raise _error_for(exc) from exc


def serve(collections: dict[str, Assistant], host: str, port: int, api_key: str | None) -> None:
    import uvicorn

    check_binding(host, api_key)
    uvicorn.run(create_app(collections, api_key), host=host, port=port, log_level="info")
