"""Chat generation: a GGUF model run in-process by llama-cpp-python, or any OpenAI-compatible server.

Both stream the reply as text pieces through `Generator.chat`, and both stop when a `threading.Event` is set,
so the UI can show words as they come and abandon a slow answer. `make_generator` picks one from
`[generation]`: `server_url` set means the server, otherwise the local model named by `model`.

This is the only module that imports llama_cpp, and only when a local model is loaded, so `import rag`
stays light and search works on machines where llama-cpp-python is missing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .errors import ConfigError, ModelError, RagError
from .models import ALIASES, CHAT_MODELS, FIX, resolve_chat_model

# Fixed so that sampling at temperature > 0 is reproducible too; temperature 0 is greedy and needs no seed.
SEED = 0


class Generator(Protocol):
    name: str

    def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Stream the assistant reply as text pieces. Stops early when `cancel` is set."""
        ...


def _available_cores() -> int:
    # os.cpu_count() reports the host's cores inside a container limited to fewer; oversubscribed threads
    # make llama.cpp several times slower, not faster.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _damaged_fix(name: str) -> str:
    if name in CHAT_MODELS:
        return f"Run `{FIX} {name}` to fetch it again."
    return (
        "Replace the file with a complete .gguf, or set [generation] model to a catalogue model "
        f'(prepare one with `{FIX} fast`, then model = "fast").'
    )


class LocalGenerator:
    """A GGUF chat model in this process. One llama.cpp context, so calls are served one at a time.

    `chat` returns a generator that takes the model's lock on its first `next()` and releases it when the
    reply ends, when `cancel` is set, or when the consumer closes it (or drops it) part-way.
    """

    def __init__(self, model_path: Path, *, context_tokens: int, threads: int, name: str):
        self.name = name
        self.model_path = Path(model_path).expanduser()
        self.context_tokens = context_tokens
        # A llama.cpp context is not thread-safe. A plain Lock rather than an RLock because a streaming
        # consumer (Gradio) may resume the generator from a different worker thread than the one that locked.
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._callers = 0
        self._llama = self._load(threads or _available_cores())

    def _load(self, threads: int):
        path = self.model_path
        if not path.is_file():
            raise ModelError(f"The chat model file {path} does not exist. {_damaged_fix(self.name)}")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                "llama-cpp-python is not installed, so local chat models cannot run. Install it with "
                "`pip install -c constraints.txt llama-cpp-python` (or `make setup`), or set "
                "[generation] server_url to an OpenAI-compatible server."
            ) from exc
        try:
            # The chat template comes from the GGUF metadata (llama-cpp-python's "chat_template.default").
            return Llama(
                model_path=str(path),
                n_ctx=self.context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                seed=SEED,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"The chat model file {path} could not be loaded: it is damaged, truncated or not a model "
                f"this llama.cpp supports. {_damaged_fix(self.name)}"
            ) from exc

    @property
    def queue_length(self) -> int:
        """Calls being served or waiting for the model: 1 means only the running one."""
        return self._callers

    @property
    def chat_format(self) -> str:
        """The prompt format llama-cpp-python chose, such as "chat_template.default" (the GGUF's own template)."""
        return self._llama.chat_format or "custom handler"

    def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        with self._count_lock:
            self._callers += 1
        try:
            if not self._acquire(cancel):
                return
            try:
                yield from self._stream(messages, max_tokens, temperature, stop, cancel)
            finally:
                self._lock.release()
        finally:
            with self._count_lock:
                self._callers -= 1

    def _acquire(self, cancel: threading.Event | None) -> bool:
        if cancel is None:
            return self._lock.acquire()
        # Poll so that a caller cancelled while queued leaves without waiting for the others.
        while not self._lock.acquire(timeout=0.1):
            if cancel.is_set():
                return False
        if cancel.is_set():
            self._lock.release()
            return False
        return True

    def _stream(self, messages, max_tokens, temperature, stop, cancel) -> Iterator[str]:
        import jinja2

        try:
            chunks = self._llama.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) if stop else [],
                seed=SEED,
                stream=True,
            )
        except (ValueError, jinja2.TemplateError) as exc:
            # Raised while the GGUF's chat template renders the messages (the prompt is only checked against
            # the context size later, on the first token).
            raise RagError(
                f"The chat template in {self.model_path.name} rejected these messages ({exc}). Use a chat "
                "(instruct) model, or messages its template accepts (some refuse a system message)."
            ) from exc
        try:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except (ValueError, RuntimeError) as exc:
                    raise self._prompt_error(exc) from exc
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
                # Checked after each token, so a cancelled reply costs at most one more token.
                if cancel is not None and cancel.is_set():
                    return
        finally:
            # Stops llama-cpp-python's generator now rather than at garbage collection, still under the lock.
            chunks.close()

    def _prompt_error(self, exc: Exception) -> RagError:
        return RagError(
            f"{self.name} could not answer this prompt ({exc}). Its context holds {self.context_tokens} tokens: "
            "send fewer or shorter passages, or raise [generation] context_tokens."
        )


def api_base(server_url: str) -> str:
    """The API root that `/chat/completions` is appended to.

    A bare server address gets `/v1`, the path every OpenAI-compatible server (llama.cpp, vLLM, Ollama, LM Studio)
    serves: "http://127.0.0.1:8080" and "http://127.0.0.1:8080/v1/" both give "http://127.0.0.1:8080/v1". A URL
    with any other path is taken as the API root as it stands ("https://host/openai/v1beta"), and a full
    ".../chat/completions" URL is cut back to its root.
    """
    url = server_url.strip().rstrip("/")
    url = url.removesuffix("/chat/completions")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"[generation] server_url = {server_url!r} is not an http(s) URL. "
            "Write it like http://127.0.0.1:8080/v1, or leave it empty to use the local model."
        )
    return url if parts.path else url + "/v1"


class ServerGenerator:
    """An OpenAI-compatible `/chat/completions` endpoint, streamed with server-sent events.

    Only the configured URL is contacted: proxy variables and redirects are ignored, so a misconfigured
    environment cannot send the documents in a prompt anywhere else.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None, timeout_s: float):
        self.url = api_base(base_url) + "/chat/completions"
        self.model = model
        self.name = f"server:{model or 'default'}"
        self.timeout_s = timeout_s
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        import httpx
        from httpx_sse import EventSource

        if cancel is not None and cancel.is_set():
            return
        body: dict = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": SEED,
            "stream": True,
        }
        if self.model:
            body["model"] = self.model
        if stop:
            body["stop"] = list(stop)
        # An unreachable host should fail in seconds; reads may legitimately wait while the server is busy.
        timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
        try:
            with (
                httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client,
                client.stream("POST", self.url, json=body, headers=self._headers) as response,
            ):
                if response.status_code >= 300:
                    response.read()
                    raise RagError(self._status_error(response))
                if response.headers.get("content-type", "").startswith("application/json"):
                    # Some servers answer a streaming request with one complete JSON reply.
                    response.read()
                    yield from _whole_reply(response.text, self.url)
                    return
                events = (event.data for event in EventSource(response).iter_sse())
                for piece in _sse_pieces(events, self.url):
                    if piece:
                        yield piece
                    if cancel is not None and cancel.is_set():
                        return
        except httpx.ConnectError as exc:
            raise RagError(
                f"Cannot connect to the chat server at {self.url} ({exc}). Check that the server is running "
                "and that [generation] server_url names its address and port."
            ) from exc
        except httpx.TimeoutException as exc:
            raise RagError(
                f"The chat server at {self.url} did not answer within {self.timeout_s:g} s. Check that it is "
                "running and not overloaded, or raise [generation] timeout_s."
            ) from exc
        except httpx.HTTPError as exc:
            raise RagError(
                f"The connection to the chat server at {self.url} failed ({exc}). Check that the server is "
                "running and that [generation] server_url is right."
            ) from exc

    def _status_error(self, response) -> str:
        status = response.status_code
        detail = _error_detail(response.text)
        where = f"The chat server at {self.url} answered HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            return (
                f"{where}. Check the API key: put it in the environment variable named by "
                "[generation] api_key_env (OPENAI_API_KEY by default)."
            )
        if status == 404:
            return (
                f"{where}. Check [generation] server_url (the API root, such as http://127.0.0.1:8080/v1) "
                "and server_model (a model the server serves)."
            )
        if 300 <= status < 400:
            return f"{where}. Redirects are not followed: set [generation] server_url to the final address."
        return f"{where}. Check the server's log and [generation] server_model."


def _error_detail(text: str) -> str:
    """The server's own error message, from OpenAI-style JSON when it sent that, else the start of the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    error = data.get("error", data.get("detail")) if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error if error is not None else data)[:300]


def _sse_pieces(events: Iterable[str], url: str) -> Iterator[str]:
    """The text pieces of a streamed chat completion, from its events' data (httpx-sse has parsed the stream:
    comments, "event:" and "id:" fields, data split over several lines, any line ending)."""
    for data in events:
        data = data.strip()
        if not data:
            continue
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise RagError(f"The chat server at {url} sent a malformed event: {data[:200]!r}.") from exc
        if isinstance(event, dict) and event.get("error"):
            raise RagError(f"The chat server at {url} stopped with an error: {_error_detail(data)}.")
        choices = event.get("choices") if isinstance(event, dict) else None
        if choices:
            yield (choices[0].get("delta") or {}).get("content") or ""


def _whole_reply(text: str, url: str) -> Iterator[str]:
    try:
        content = json.loads(text)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RagError(f"The chat server at {url} sent a reply that is not a chat completion: {text[:200]!r}.") from exc
    if content:
        yield content


def make_generator(generation_cfg, cache_dir: Path, model: str | None = None) -> Generator:
    """The generator `[generation]` asks for: the server when `server_url` is set, else the local model.

    `model` overrides `[generation] model` ("fast", "quality", "test" or a .gguf path); it does not apply to a
    server, whose model is `server_model`. Loading a local model takes a second or more: keep the result.
    """
    cfg = generation_cfg
    if cfg.server_url:
        api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        return ServerGenerator(cfg.server_url, cfg.server_model, api_key=api_key or None, timeout_s=cfg.timeout_s)
    wanted = model or cfg.model
    path = resolve_chat_model(wanted, cache_dir)
    canonical = ALIASES.get(wanted, wanted)
    name = canonical if canonical in CHAT_MODELS else path.stem
    return LocalGenerator(path, context_tokens=cfg.context_tokens, threads=cfg.threads, name=name)
