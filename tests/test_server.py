"""The OpenAI-compatible API (rag/server.py), served for real by uvicorn on a free port and spoken to with the
official `openai` client and with raw HTTP. The assistants use the fast fake embedder and a scripted chat model:
these tests check the protocol and that the API returns what `Assistant.answer` returns, not answer quality."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import httpx
import pytest

import rag
from rag.prompts import REFUSAL, REWRITE_SYSTEM
from rag.server import check_binding, create_app
from tests.conftest import SEEDS, _config
from tests.fakes import FakeEmbedder, ScriptedGenerator

QUESTION = "What did Armenia refuse to provide to Azerbaijan?"
FOLLOW_UP_STANDALONE = "What did Armenia send secretly to the territories of Azerbaijan?"
KEY = "s3cret-key"


def _reply(messages):
    """Rewrites a follow-up to a fixed standalone question; "translates" by echoing (the check then refuses the
    echo as a translation, so quotes are shown as they are)."""
    if messages[0]["content"] == REWRITE_SYSTEM:
        return FOLLOW_UP_STANDALONE
    return messages[-1]["content"]


class Server:
    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def assistants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    corpus = folder / "corpus"
    shutil.copytree(SEEDS, corpus)
    embedder = FakeEmbedder()
    made = {}
    for name, min_confidence in (("seeds", 0.0), ("never", 1.0)):
        cfg = _config(corpus, folder / f"index-{name}", {"answer": {"min_confidence": min_confidence}})
        made[name] = rag.Assistant(cfg, embedder=embedder, generator=ScriptedGenerator(_reply))
        made[name].build_index()
    return made


@pytest.fixture(scope="module")
def server(assistants):
    running = Server(create_app(assistants))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keyed_server(assistants):
    running = Server(create_app({"seeds": assistants["seeds"]}, api_key=KEY))
    yield running
    running.stop()


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_a_plain_answer_is_the_librarys_answer(client, assistants):
    reply = client.chat.completions.create(model="seeds", messages=[{"role": "user", "content": QUESTION}])
    expected = assistants["seeds"].answer(QUESTION)
    assert reply.choices[0].message.content == expected.to_markdown().rstrip("\n")
    assert reply.choices[0].finish_reason == "stop"
    extra = reply.model_dump()
    assert extra["refused"] is False and extra["citations"] == [c.to_dict() for c in expected.citations]
    assert extra["citations"], "an answer with citations"
    assert "[1]" in reply.choices[0].message.content


def test_a_streamed_answer_ends_with_sources_and_done(client, server, assistants):
    chunks = list(
        client.chat.completions.create(model="seeds", messages=[{"role": "user", "content": QUESTION}], stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == assistants["seeds"].answer(QUESTION).to_markdown().rstrip("\n")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_dump()["citations"]
    body = {"model": "seeds", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all(json.loads(e[6:])["object"] == "chat.completion.chunk" for e in events[:-1])


def test_a_refusal_cites_nothing(client):
    reply = client.chat.completions.create(model="never", messages=[{"role": "user", "content": QUESTION}])
    assert reply.model_dump()["refused"] is True and reply.model_dump()["citations"] == []
    assert reply.choices[0].message.content.startswith(REFUSAL["en"])
    closest = reply.model_dump()["closest"]  # offered as such, each sentence with its passage
    assert closest and all(m["quote"] in reply.choices[0].message.content and m["passage"]["source"] for m in closest)


def test_a_follow_up_is_rewritten_with_the_conversation(client, assistants):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Minefield maps [1]."},
        {"role": "user", "content": "And what did it send secretly?"},
    ]
    reply = client.chat.completions.create(model="seeds", messages=messages)
    history = [m for m in messages[1:-1]]
    expected = assistants["seeds"].answer(messages[-1]["content"], history)
    assert expected.standalone_question == FOLLOW_UP_STANDALONE
    assert reply.choices[0].message.content == expected.to_markdown().rstrip("\n")


def test_an_unknown_model_is_a_404_in_openais_shape(client, server):
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 404
    raw = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=10)
    assert raw.status_code == 404 and raw.json()["error"]["code"] == "model_not_found"


def test_models_lists_the_collections(client):
    assert [m.id for m in client.models.list()] == ["seeds", "never"]


def test_a_key_is_required_when_set(keyed_server):
    import openai

    wrong = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="seeds", messages=[{"role": "user", "content": QUESTION}])
    assert httpx.get(f"{keyed_server.url}/v1/models", timeout=10).status_code == 401
    right = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key=KEY, max_retries=0)
    assert right.chat.completions.create(model="seeds", messages=[{"role": "user", "content": QUESTION}]).choices
    assert httpx.get(f"{keyed_server.url}/health", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"messages": []}).encode(), 400),
        (json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400),
        (json.dumps({"messages": [{"role": "user", "content": 42}]}).encode(), 400),
        (json.dumps({"messages": [{"role": "user", "content": "   "}]}).encode(), 400),
        (json.dumps({"messages": [{"role": "user", "content": "why " * 400}]}).encode(), 413),
        (json.dumps({"messages": [{"role": "user", "content": "x" * 1_100_000}]}).encode(), 413),
    ],
)
def test_bad_requests_get_an_error_status_and_the_server_lives_on(server, body, status):
    raw = httpx.post(
        f"{server.url}/v1/chat/completions", content=body, timeout=30, headers={"content-type": "application/json"}
    )
    assert raw.status_code == status, raw.text
    assert raw.json()["error"]["message"]
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_search_returns_hits_with_filters(server):
    raw = httpx.post(
        f"{server.url}/v1/search", json={"query": "Bobur Usmanov", "k": 3, "filters": {"lang": "az"}}, timeout=10
    )
    assert raw.status_code == 200
    hits = raw.json()["data"]
    assert 1 <= len(hits) <= 3 and all(h["lang"] == "az" for h in hits)
    bad = httpx.post(f"{server.url}/v1/search", json={"query": "x", "k": 0}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "k"
    # JSON values a client means: a list of languages, a year as a number
    listed = httpx.post(f"{server.url}/v1/search", json={"query": "Bobur Usmanov", "filters": {"lang": ["az", "ru"],
                        "date_from": 2023}}, timeout=10)  # fmt: skip
    assert listed.status_code == 200 and {h["lang"] for h in listed.json()["data"]} <= {"az", "ru"}
    for filters, words in (
        ({"lang": 5}, "The filter lang must be text"),
        ({"date_from": "yesterday"}, "The start date 'yesterday' is not a date"),
        ({"date_from": "2024", "date_to": "2023"}, "The date range is empty"),
    ):
        wrong = httpx.post(f"{server.url}/v1/search", json={"query": "x", "filters": filters}, timeout=10)
        assert wrong.status_code == 400 and words in wrong.json()["error"]["message"], wrong.text


def test_another_address_needs_a_key():
    with pytest.raises(rag.RagError, match="API key"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "key")
    check_binding("127.0.0.1", None)


@pytest.fixture
def documents_server(tmp_path):
    """A collection of its own, behind a key, that the tests may add documents to and remove them from."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    assistant = rag.Assistant(_config(corpus, tmp_path / "index", {}), embedder=FakeEmbedder())
    assistant.build_index()
    running = Server(create_app({"news": assistant}, api_key=KEY))
    yield running, corpus
    running.stop()


AUTH = {"Authorization": f"Bearer {KEY}"}
WIND_FARM = b"Wind farm deal\n\nAzerbaijan and Masdar signed a deal on a 500 megawatt wind farm near Absheron."


def test_documents_are_added_and_removed_through_the_api(documents_server):
    server, corpus = documents_server
    files = [("file", ("wind farm.txt", WIND_FARM, "text/plain")), ("file", ("notes.md", b"# Notes\n\nOn Ganja."))]
    raw = httpx.post(f"{server.url}/v1/documents", files=files, headers=AUTH, timeout=60)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["model"] == "news" and [a["source"] for a in body["added"]] == ["wind_farm.txt", "notes.md"]
    assert body["added"][0]["original"] == "wind farm.txt" and body["added"][0]["passages"] >= 1
    assert body["index"]["documents"] == 7 and sorted(body["index"]["added"]) == ["notes.md", "wind_farm.txt"]
    assert (corpus / "wind_farm.txt").read_bytes() == WIND_FARM
    search = httpx.post(f"{server.url}/v1/search", json={"query": "Masdar wind farm", "k": 1}, headers=AUTH)
    assert search.json()["data"][0]["source"] == "wind_farm.txt"

    raw = httpx.delete(f"{server.url}/v1/documents/wind_farm.txt", headers=AUTH, timeout=60)
    assert raw.status_code == 200, raw.text
    assert raw.json()["removed"] == ["wind_farm.txt"] and raw.json()["index"]["removed"] == ["wind_farm.txt"]
    assert not (corpus / "wind_farm.txt").exists()
    search = httpx.post(f"{server.url}/v1/search", json={"query": "Masdar wind farm", "k": 20}, headers=AUTH)
    assert all(hit["source"] != "wind_farm.txt" for hit in search.json()["data"])


def test_refused_and_missing_documents_get_400_and_404_in_openais_shape(documents_server):
    server, corpus = documents_server
    before = sorted(p.name for p in corpus.iterdir())
    raw = httpx.post(f"{server.url}/v1/documents", files={"file": ("program.exe", b"MZ")}, headers=AUTH)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "document_rejected"
    assert "'program.exe' was not added: .exe files are not accepted" in raw.json()["error"]["message"]
    raw = httpx.post(f"{server.url}/v1/documents", files={"file": ("empty.txt", b"")}, headers=AUTH)
    assert raw.status_code == 400 and "empty" in raw.json()["error"]["message"]
    raw = httpx.post(f"{server.url}/v1/documents", json={"file": "x"}, headers=AUTH)  # not multipart
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "file"
    mixed = [("file", ("ok.txt", b"Some news about Baku.")), ("file", ("bad.exe", b"MZ"))]
    raw = httpx.post(f"{server.url}/v1/documents", files=mixed, headers=AUTH, timeout=60)
    assert raw.status_code == 200 and [r["name"] for r in raw.json()["rejected"]] == ["bad.exe"]
    assert sorted(p.name for p in corpus.iterdir()) == sorted([*before, "ok.txt"])  # the refused left nothing

    raw = httpx.delete(f"{server.url}/v1/documents/missing.txt", headers=AUTH)
    assert raw.status_code == 404 and raw.json()["error"]["code"] == "document_not_found"
    outside = corpus.parent / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    raw = httpx.delete(f"{server.url}/v1/documents/..%2Foutside.txt", headers=AUTH)
    assert raw.status_code == 400 and "not a document in the corpus folder" in raw.json()["error"]["message"]
    assert outside.exists()
    unknown = {"model": "nope"}
    raw = httpx.post(f"{server.url}/v1/documents", files={"file": ("a.txt", b"x")}, data=unknown, headers=AUTH)
    assert raw.status_code == 404 and raw.json()["error"]["code"] == "model_not_found"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_documents_need_the_key_like_everything_else(documents_server):
    server, corpus = documents_server
    before = sorted(p.name for p in corpus.iterdir())
    assert httpx.post(f"{server.url}/v1/documents", files={"file": ("a.txt", b"news")}).status_code == 401
    assert httpx.delete(f"{server.url}/v1/documents/001_44aa1b61c723b359.txt").status_code == 401
    assert sorted(p.name for p in corpus.iterdir()) == before
