"""Chat generation with the real SmolLM2-135M test model: in-process, and through a real llama_cpp.server."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.config import GenerationConfig, load_config
from rag.errors import ConfigError, ModelError, RagError
from rag.generation import LocalGenerator, ServerGenerator, api_base, make_generator
from rag.models import prepare_models
from tests.browser.app_harness import stop_process

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
OTHER = [{"role": "user", "content": "Name three colours of the rainbow."}]
API_KEY = "test-key"


@pytest.fixture(scope="session")
def test_model() -> Path:
    return prepare_models(load_config().models.cache, ["test"], log=lambda _: None)["test"]


@pytest.fixture(scope="session")
def local(test_model) -> LocalGenerator:
    return LocalGenerator(test_model, context_tokens=1024, threads=1, name="smollm2-135m")


def reply(gen, messages=QUESTION, **kwargs) -> str:
    return "".join(gen.chat(messages, max_tokens=kwargs.pop("max_tokens", 24), **kwargs))


@pytest.mark.llm
def test_local_streams_text_with_the_gguf_template(local):
    pieces = list(local.chat(QUESTION, max_tokens=24))
    assert len(pieces) > 1
    assert "".join(pieces).strip()
    assert local.chat_format == "chat_template.default"
    assert local.queue_length == 0


@pytest.mark.llm
def test_local_is_deterministic_and_independent_of_earlier_prompts(local, test_model):
    first = reply(local)
    reply(local, OTHER)  # leaves another prompt in the KV cache
    assert reply(local) == first
    fresh = LocalGenerator(test_model, context_tokens=1024, threads=1, name="smollm2-135m")
    assert reply(fresh) == first


@pytest.mark.llm
def test_local_cancel_stops_between_tokens(local):
    cancel = threading.Event()
    pieces = []
    for piece in local.chat(QUESTION, max_tokens=60, cancel=cancel):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) == 1
    assert reply(local, cancel=cancel) == ""  # cancelled before it starts: no work at all
    assert local.queue_length == 0


@pytest.mark.llm
def test_local_serialises_concurrent_callers(local):
    expected = {0: reply(local), 1: reply(local, OTHER)}
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = reply(local, [QUESTION, OTHER][i])

    # The first caller holds the model mid-reply, so the second must queue behind it.
    first = local.chat(QUESTION, max_tokens=24)
    head = next(first)
    second = threading.Thread(target=call, args=(1,))
    second.start()
    deadline = time.monotonic() + 10
    while local.queue_length < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert local.queue_length == 2
    results[0] = head + "".join(first)
    second.join(timeout=60)
    assert results == expected

    threads = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == expected
    assert local.queue_length == 0


@pytest.mark.llm
def test_local_releases_the_model_when_the_consumer_stops_early(local):
    stream = local.chat(QUESTION, max_tokens=24)
    next(stream)
    stream.close()
    assert local.queue_length == 0
    assert reply(local)  # would block forever if the lock were still held


@pytest.mark.llm
def test_local_prompt_longer_than_the_context_is_a_rag_error(test_model):
    small = LocalGenerator(test_model, context_tokens=64, threads=1, name="smollm2-135m")
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(RagError, match=r"context_tokens"):
        reply(small, long)
    assert small.queue_length == 0


@pytest.mark.llm
def test_local_template_refusal_is_a_rag_error(test_model):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    gen = LocalGenerator(test_model, context_tokens=256, threads=1, name="smollm2-135m")
    # Like Gemma's template, which raises for a system message.
    refusing = "{{ raise_exception('System role not supported') }}"
    gen._llama.chat_handler = Jinja2ChatFormatter(template=refusing, eos_token="", bos_token="").to_chat_handler()
    with pytest.raises(RagError, match=r"chat template .* rejected these messages \(System role not supported\)"):
        reply(gen)
    assert gen.queue_length == 0


@pytest.mark.llm
def test_truncated_model_is_a_model_error_with_the_fix(test_model, tmp_path):
    broken = tmp_path / test_model.name
    with open(test_model, "rb") as f:
        broken.write_bytes(f.read(1_000_000))
    with pytest.raises(ModelError, match=r"python -m rag models smollm2-135m") as info:
        LocalGenerator(broken, context_tokens=512, threads=1, name="smollm2-135m")
    assert str(broken) in str(info.value)
    with pytest.raises(ModelError, match=r"Replace the file"):
        LocalGenerator(broken, context_tokens=512, threads=1, name="my-model")


def test_missing_model_is_a_model_error(tmp_path):
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelError, match=r"does not exist.*python -m rag models smollm2-135m") as info:
        LocalGenerator(missing, context_tokens=512, threads=1, name="smollm2-135m")
    assert str(missing) in str(info.value)


@pytest.mark.llm
def test_make_generator_picks_the_local_model_or_the_server(test_model):
    cache = load_config().models.cache
    gen = make_generator(GenerationConfig(model="quality", context_tokens=512, threads=1), cache, model="test")
    assert isinstance(gen, LocalGenerator)
    assert gen.name == "smollm2-135m"
    copy = make_generator(GenerationConfig(model=str(test_model), context_tokens=512, threads=1), cache)
    assert copy.name == test_model.stem
    server = make_generator(GenerationConfig(server_url="http://127.0.0.1:9", server_model="m"), cache, model="test")
    assert isinstance(server, ServerGenerator)
    assert (server.name, server.url) == ("server:m", "http://127.0.0.1:9/v1/chat/completions")


def test_api_base_accepts_common_spellings():
    for url in ("http://h:8080", "http://h:8080/", "http://h:8080/v1", "http://h:8080/v1/chat/completions/"):
        assert api_base(url) == "http://h:8080/v1"
    assert api_base("https://h/openai/v1beta/") == "https://h/openai/v1beta"
    with pytest.raises(ConfigError, match="server_url"):
        api_base("localhost:8080")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_not_running_is_a_rag_error_naming_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    gen = ServerGenerator(url, "m", api_key=None, timeout_s=5)
    with pytest.raises(RagError, match=re.escape(f"Cannot connect to the chat server at {url}/chat/completions")):
        reply(gen)


@pytest.fixture(scope="module")
def llama_server(test_model, tmp_path_factory):
    """The real llama_cpp.server on a free local port, serving the test model behind an API key."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(test_model), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1"]
    command += ["--api_key", API_KEY, "--verbose", "False"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=2)
                if models.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 60 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc, timeout_s=10)


@pytest.mark.llm
def test_server_streams_the_same_reply_as_the_local_model(llama_server, local):
    gen = ServerGenerator(llama_server, "smollm2", api_key=API_KEY, timeout_s=30)
    pieces = list(gen.chat(QUESTION, max_tokens=24))
    assert len(pieces) > 1
    assert "".join(pieces) == reply(local)


@pytest.mark.llm
def test_server_cancel_and_errors(llama_server):
    gen = ServerGenerator(llama_server + "/v1/", "smollm2", api_key=API_KEY, timeout_s=30)
    cancel = threading.Event()
    pieces = []
    for piece in gen.chat(QUESTION, max_tokens=60, cancel=cancel):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) == 1

    no_key = ServerGenerator(llama_server, "smollm2", api_key=None, timeout_s=30)
    with pytest.raises(RagError, match=r"HTTP 401.*api_key_env"):
        reply(no_key)
    wrong_path = ServerGenerator(llama_server + "/api", "smollm2", api_key=API_KEY, timeout_s=30)
    with pytest.raises(RagError, match=r"/api/chat/completions answered HTTP 404.*server_url"):
        reply(wrong_path)


@pytest.mark.llm
@pytest.mark.model
def test_an_answer_through_the_openai_compatible_server(llama_server, real_assistant_factory, monkeypatch):
    """The whole answer pipeline with [generation] server_url: the structure holds whatever the model says."""
    from tests.conftest import SEEDS

    monkeypatch.setenv("RAG_TEST_SERVER_KEY", API_KEY)
    seeds = real_assistant_factory(SEEDS)
    seeds.build_index()
    cfg = seeds.config.with_overrides(
        generation={"server_url": llama_server, "server_model": "smollm2", "api_key_env": "RAG_TEST_SERVER_KEY"},
        answer={"min_confidence": 0.0},  # the model must be asked (to translate): no refusal before it
    )
    import rag

    assistant = rag.Assistant(cfg, embedder=seeds.embedder)
    answer = assistant.answer("What did Uzbekistan say about territorial integrity?")
    assert answer.model == "server:smollm2"
    assert not answer.refused and answer.citations
    texts = {d.source: d.text for d in assistant.index().documents}
    for c in answer.citations:
        assert texts[c.source][c.start : c.end] == c.text
        assert texts[c.source][c.quote_start : c.quote_end] == c.quote


def test_server_stream_is_read_by_the_event_stream_rules(tmp_path):
    """A server's events as the SSE standard allows them: comments, event/id fields, CRLF line ends, and one
    event's JSON split over two data lines (joined with a newline, still one JSON document)."""
    import http.server
    import threading

    body = (
        b": keep-alive\r\n\r\n"
        b'event: message\r\nid: 1\r\ndata: {"choices": [{"delta": {"content": "Baku "}}]}\r\n\r\n'
        b'data: {"choices": [{"delta":\r\ndata:  {"content": "hosted it."}}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
        b'data: {"choices": [{"delta": {"content": "never read"}}]}\r\n\r\n'
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server calls)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = ServerGenerator(f"http://127.0.0.1:{server.server_port}/v1", "m", api_key=None, timeout_s=5)
        assert reply(gen) == "Baku hosted it."
    finally:
        server.shutdown()
