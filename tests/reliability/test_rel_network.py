"""No outgoing network connection while indexing, searching or answering, with the real models.

Every way a Python library reaches the network goes through a name lookup or a socket connect; both are
guarded for the whole test and anything that is not loopback is refused and recorded. The guard is itself
checked first, so the test cannot pass because it watches nothing.
"""

from __future__ import annotations

import shutil
import socket

import pytest
from relfakes import SEEDS, make_config

import rag

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture
def network_guard(monkeypatch):
    """Refuses and records every name lookup and socket connection to a host that is not loopback."""
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def refused(what: str, host) -> OSError:
        attempts.append(f"{what} {host}")
        return OSError(f"network access attempted: {what} {host}")

    def is_local(sock: socket.socket, address) -> bool:
        return sock.family == socket.AF_UNIX or str(address[0]) in LOOPBACK

    def connect(self, address):
        if not is_local(self, address):
            raise refused("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if not is_local(self, address):
            raise refused("connect", address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if not is_local(self, address):
            raise refused("sendto", address)
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and str(host) not in LOOPBACK:
            raise refused("lookup", host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_the_guard_catches_lookups_and_connections(network_guard):
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("example.org", 443), timeout=1)  # the name lookup is refused
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(OSError):
        sock.connect(("192.0.2.1", 443))  # an address needs no lookup: the connect is refused
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError):
        sock.sendto(b"x", ("192.0.2.1", 53))
    assert network_guard == ["lookup example.org", "connect ('192.0.2.1', 443)", "sendto ('192.0.2.1', 53)"]


@pytest.mark.model
@pytest.mark.llm
def test_no_network_while_indexing_searching_and_answering(network_guard, tmp_path):
    """The seeds indexed with the real e5 model, searched, and answered by a real local chat model in three
    languages, including a follow-up (which asks the model to rewrite the question) and a refusal."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    cfg = make_config(corpus, tmp_path / "index", generation={"model": "test", "max_tokens": 24, "threads": 1})
    assistant = rag.Assistant(cfg)
    assert assistant.build_index().documents == 5
    assert assistant.search("Özbəkistan ərazi bütövlüyü", k=2)
    first = assistant.answer("When did Blinken call Ilham Aliyev?")  # quotes an az sentence: the model translates
    assert first.citations
    follow_up = assistant.answer(
        "И что он сказал о визите?",
        history=[
            {"role": "user", "content": "Кто возглавлял делегацию Азербайджана на консультациях с Узбекистаном?"},
            {"role": "assistant", "content": "Делегацию возглавлял Джейхун Байрамов."},
        ],
    )
    assert follow_up.text
    refused = assistant.answer("Marsda nə qədər su var?")
    assert refused.refused
    assert network_guard == []
