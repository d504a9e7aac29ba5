"""Retrieval with the real converted multilingual-e5-small model over the seeds (integration)."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import EVAL, SEEDS

pytestmark = pytest.mark.model

DEV = [json.loads(line) for line in (EVAL / "seeds_dev.jsonl").read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def seeds_assistant(real_assistant_factory):
    assistant = real_assistant_factory(SEEDS)
    assistant.build_index()
    return assistant


def _dev_ranks(assistant) -> dict[str, int | None]:
    """Each answerable dev question's rank of its gold article among the distinct documents found."""
    ranks = {}
    for item in (q for q in DEV if q["gold"]):
        sources = list(dict.fromkeys(hit.source for hit in assistant.search(item["q"], k=10)))
        ranks[item["id"]] = next((i for i, s in enumerate(sources, 1) if s in item["gold"]), None)
    return ranks


def test_dev_questions_find_their_gold_article_among_the_first_two(seeds_assistant):
    """Rank 1 or 2 of five (with five documents, top 5 proves nothing). dev-oic-2 ("What did the OIC condemn
    ...") is answered by an Azerbaijani article that says "İƏT": it ranks first only because the corpus's own
    definitions link OIC to İƏT (aliases.py); before that an English article about the OIC won. Three dev
    questions rank their article second since the language means are shrunk towards the prior (the next test);
    over 108 questions in five-article newsrooms the prior ranks 17 more first (bench/RESULTS.md)."""
    ranks = _dev_ranks(seeds_assistant)
    assert all(rank in (1, 2) for rank in ranks.values()), ranks
    assert sum(rank == 1 for rank in ranks.values()) >= len(ranks) - 3, ranks


def test_corpus_language_means_alone_rank_every_dev_question_first(real_assistant_factory):
    """The previous centring (each language's own mean, `language_prior_documents = 0`) is still one setting
    away, and still puts every dev question's article first."""
    assistant = real_assistant_factory(SEEDS, retrieval={"language_prior_documents": 0})
    assistant.build_index()
    ranks = _dev_ranks(assistant)
    assert all(rank == 1 for rank in ranks.values()), ranks


def test_the_only_english_article_is_found_for_an_english_question_about_it(real_assistant_factory, seeds_assistant):
    """The seeds hold one English article (002): its own mean as "the English mean" is mostly its subject, and
    subtracting it from an English question about that subject pushed the article below Azerbaijani ones about
    other meetings. With the prior (retrieval.language_means) it ranks first."""
    question = "What did the OIC ambassadors say they wanted at the end of the meeting with the foreign minister?"
    assert seeds_assistant.search(question, k=3)[0].source == "002_be657e30248251b4.txt"
    alone = real_assistant_factory(SEEDS, retrieval={"language_prior_documents": 0})
    alone.build_index()
    assert "002_be657e30248251b4.txt" not in [hit.source for hit in alone.search(question, k=3)][:1]


@pytest.mark.parametrize(
    "question",
    [
        "What did Uzbekistan say about territorial integrity?",
        "Who led the Uzbek delegation at the political consultations?",
        "Кто возглавлял делегацию Азербайджана на консультациях с Узбекистаном?",
    ],
)
def test_english_and_russian_questions_find_the_azerbaijani_answer(seeds_assistant, question):
    hit = seeds_assistant.search(question, k=3)[0]
    assert hit.source == "004_6ae4727e16493b4e.txt" and hit.lang == "az"


def test_an_azerbaijani_question_finds_the_russian_article(seeds_assistant):
    hit = seeds_assistant.search("Bayramov Qırmızı Xaç Komitəsinin prezidenti ilə harada görüşüb?", k=3)[0]
    assert hit.source == "003_85deb69a06af6b7d.txt" and hit.lang == "ru"


def test_seeds_link_the_english_and_azerbaijani_acronyms_of_the_oic(seeds_assistant):
    groups = [{(a.lang, a.acronym) for a in group} for group in seeds_assistant.index().aliases.groups]
    assert {("en", "OIC"), ("az", "İƏT")} in groups
    hit = seeds_assistant.search("What did the OIC condemn?", k=1)[0]
    assert hit.source == "000_f7aabd5eab4a1a5e.txt" and "seçkilər" in hit.text


def test_search_api_and_repeated_calls_reuse_one_model(seeds_assistant):
    first = seeds_assistant.search("Blinken", k=3)
    assert first == seeds_assistant.search("Blinken", k=3)
    assert seeds_assistant.embedder is seeds_assistant.embedder


def test_no_network_while_indexing_and_searching(real_assistant_factory, tmp_path, monkeypatch):
    """Fails if anything opens a socket to a non-loopback address."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or str(host) in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    def guarded_create_connection(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network access attempted: {address}")
        return real_create_connection(address, *args, **kwargs)

    real_create_connection = socket.create_connection
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    assistant = real_assistant_factory(SEEDS, tmp_path / "index")
    assistant.build_index()
    assert assistant.search("Blinken Əliyev", k=2)
    assert attempts == []
