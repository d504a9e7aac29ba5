"""Acronyms linked across languages from the corpus's own definitions (rag/aliases.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.aliases import Alias, AliasTable, find_definitions, learn
from rag.types import Document
from tests.conftest import EVAL, SEEDS


def doc(lang: str, text: str, name: str = "") -> Document:
    return Document(name or f"{lang}-{hash(text)}", name or f"{lang}.txt", "", None, lang, text, "")


DEFINED = [
    ("Ceyhun Bayramov İslam Əməkdaşlıq Təşkilatının (İƏT) Baş katibi ilə", "İƏT", "İslam Əməkdaşlıq Təşkilatının"),
    ("ambassadors of the Organization of Islamic Cooperation (OIC) met", "OIC", "Organization of Islamic Cooperation"),
    ("генсек Организации исламского сотрудничества (ОИС) заявил", "ОИС", "Организации исламского сотрудничества"),
    ("the Organization for Security and Co-operation in Europe (OSCE)", "OSCE", "Organization for Security and "
     "Co-operation in Europe"),
    ("Xarici İşlər Nazirliyi (XİN) məlumat yayıb", "XİN", "Xarici İşlər Nazirliyi"),
    ("at the OIC (Organization of Islamic Cooperation) in Baku", "OIC", "Organization of Islamic Cooperation"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "acronym", "long_form"), DEFINED)
def test_definitions_are_found_in_each_language(text, acronym, long_form):
    assert (acronym, long_form) in find_definitions(text)


@pytest.mark.parametrize(
    "text",
    [
        "The talks (held in June) ended.",  # not an acronym
        "He said (Reuters) that the talks ended.",  # no capitals spelled by the words before it
        "Sputnik Azerbaijan reports. (AP) The talks ended.",  # a sentence boundary separates the words
        "prices rose (2023) sharply",
        "the United Nations (UN",  # no closing bracket
    ],
)
def test_text_without_a_definition_yields_none(text):
    assert find_definitions(text) == []


def test_the_seeds_define_the_acronyms_of_their_organisations():
    found = {name.name[:3]: find_definitions(name.read_text(encoding="utf-8")) for name in sorted(SEEDS.iterdir())}
    assert ("İƏT", "İslam Əməkdaşlıq Təşkilatının") in found["000"]
    assert ("OIC", "Organization of Islamic Cooperation") in found["002"]


class TableEncoder:
    """Vectors chosen by the test: a long form maps to a fixed direction; counts what it was asked to encode."""

    def __init__(self, directions: dict[str, np.ndarray]):
        self.directions = directions
        self.asked: list[str] = []

    def __call__(self, forms: list[str]) -> np.ndarray:
        self.asked.extend(forms)
        return np.stack([self.directions[f] / np.linalg.norm(self.directions[f]) for f in forms])


def unit(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


CORPUS = [
    doc("en", "The Organization of Islamic Cooperation (OIC) met. The United Nations (UN) spoke.", "en.txt"),
    doc("az", "İslam Əməkdaşlıq Təşkilatının (İƏT) iclası. Birləşmiş Millətlər Təşkilatı (BMT) bəyanatı.", "az.txt"),
    doc("ru", "Организация Объединенных Наций (ООН) заявила.", "ru.txt"),
]
DIRECTIONS = {
    "Organization of Islamic Cooperation": unit(1, 0.1, 0),
    "İslam Əməkdaşlıq Təşkilatının": unit(1, 0, 0.1),
    "United Nations": unit(0, 1, 0.1),
    "Birləşmiş Millətlər Təşkilatı": unit(0.1, 1, 0),
    "Организация Объединенных Наций": unit(0, 1, 0),
}


def test_long_forms_that_are_mutual_nearest_neighbours_link_their_acronyms():
    table = learn(CORPUS, TableEncoder(DIRECTIONS))
    groups = sorted(sorted((a.lang, a.acronym) for a in group) for group in table.groups)
    assert groups == [[("az", "BMT"), ("en", "UN"), ("ru", "ООН")], [("az", "İƏT"), ("en", "OIC")]]


def test_a_link_below_the_threshold_is_not_made():
    far = dict(DIRECTIONS, **{"İslam Əməkdaşlıq Təşkilatının": unit(0.5, 0, 1)})  # cosine about 0.45 with OIC
    groups = [{a.acronym for a in group} for group in learn(CORPUS, TableEncoder(far)).groups]
    assert {"OIC", "İƏT"} not in groups and {"UN", "BMT", "ООН"} in groups


def test_a_single_language_corpus_needs_no_encoding():
    encoder = TableEncoder(DIRECTIONS)
    table = learn([CORPUS[0]], encoder)
    assert len(table) == 0 and encoder.asked == []


def test_the_next_build_encodes_only_long_forms_it_has_not_seen():
    first = learn(CORPUS, TableEncoder(DIRECTIONS))
    extra = doc("en", "The European Union (EU) agreed.", "eu.txt")
    encoder = TableEncoder(dict(DIRECTIONS, **{"European Union": unit(0, 0, 1)}))
    second = learn([*CORPUS, extra], encoder, previous=first)
    assert encoder.asked == ["European Union"]
    assert len(second) == len(first)


def test_a_group_never_holds_two_acronyms_of_one_language():
    corpus = [
        doc("en", "The United Nations (UN) and the United Nations Organization (UNO) met."),
        doc("az", "Birləşmiş Millətlər Təşkilatı (BMT) bəyanatı."),
    ]
    directions = {
        "United Nations": unit(1, 0, 0),
        "United Nations Organization": unit(1, 0.05, 0),
        "Birləşmiş Millətlər Təşkilatı": unit(1, 0.02, 0),
    }
    table = learn(corpus, TableEncoder(directions))
    for group in table.groups:
        langs = [a.lang for a in group]
        assert len(langs) == len(set(langs))


def test_a_question_is_written_the_way_each_other_language_writes_its_acronyms():
    table = AliasTable(
        [
            [
                Alias("az", "İƏT", "İslam Əməkdaşlıq Təşkilatının"),
                Alias("en", "OIC", "Organization of Islamic Cooperation"),
            ]
        ]
    )
    variants = table.query_variants("What did the OIC condemn?")
    assert variants == {"az": "What did the İslam Əməkdaşlıq Təşkilatının (İƏT) condemn?"}
    assert table.lexical_terms("What did the OIC condemn?") == ["İƏT"]
    # Whole words only, and the same case: "OICs" and "oic" are not the acronym.
    assert table.query_variants("What did the OICs or the oic say?") == {}
    assert table.query_variants("İƏT-in mövqeyi nədir?") == {
        "en": "Organization of Islamic Cooperation (OIC)-in mövqeyi nədir?"
    }


def test_the_table_survives_the_index_and_the_next_build(make_assistant, corpus, fake_embedder):
    assistant = make_assistant(corpus)
    assistant.build_index()
    table = assistant.index().aliases
    # The seeds define İƏT (az) and OIC (en): both long forms are kept with their vectors for the next build.
    assert {("az", "İslam Əməkdaşlıq Təşkilatının"), ("en", "Organization of Islamic Cooperation")} <= set(table.known)
    (corpus / "005_new.txt").write_text("Avropa İttifaqı (Aİ) bəyanat yayıb. " * 3, encoding="utf-8")
    encoded = fake_embedder.encoded
    assistant.build_index()
    again = assistant.index().aliases
    assert ("az", "Avropa İttifaqı") in again.known
    assert fake_embedder.encoded - encoded == 2  # the new file's one passage and its one new long form
    for key, vector in table.known.items():
        assert np.array_equal(again.known[key], vector)


@pytest.mark.model
def test_real_links_on_ntrex_and_the_seeds_are_all_translations(real_assistant_factory):
    """Precision of linking with the real model: NTREX articles are translations of each other, so a right
    link joins definitions from the same article in two languages; the seeds add OIC / İƏT."""
    embedder = real_assistant_factory(SEEDS).embedder
    docs = []
    for line in (EVAL / "ntrex_az_ru_en_docs.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        docs += [doc(lang, item[lang], f"{item['doc_id']}|{lang}") for lang in ("az", "ru", "en")]
    docs += [doc("az" if p.name[:3] in {"000", "001", "004"} else "en" if p.name[:3] == "002" else "ru",
                 p.read_text(encoding="utf-8"), f"seeds|{p.name[:3]}") for p in sorted(SEEDS.iterdir())]  # fmt: skip
    defined_in = {}
    for d in docs:
        for acronym, _ in find_definitions(d.text):
            defined_in.setdefault((d.lang, acronym), set()).add(d.source.split("|")[0])
    table = learn(docs, embedder.encode_passages)
    assert len(table) >= 3
    for group in table.groups:
        # Each member is defined in the same article as another member (in another language).
        articles = [defined_in[(a.lang, a.acronym)] for a in group]
        assert all(any(mine & theirs for theirs in articles if theirs is not mine) for mine in articles), group
    assert {("az", "İƏT"), ("en", "OIC")} in [{(a.lang, a.acronym) for a in g} for g in table.groups]


def test_an_acronym_counts_as_named_when_the_evidence_uses_another_languages_acronym():
    from rag import grounding
    from rag.types import Evidence, Hit

    table = AliasTable(
        [
            [
                Alias("az", "İƏT", "İslam Əməkdaşlıq Təşkilatının"),
                Alias("en", "OIC", "Organization of Islamic Cooperation"),
            ]
        ]
    )
    quote = "Qondarma rejimin “seçkilər” adlandırdığı fəaliyyətinin İƏT tərəfindən pislənilməsi təqdir olunub."
    hit = Hit("000.txt", "Bayramov Taha ilə görüşüb", None, "az", quote, 0, len(quote), 1.0)
    evidence = [Evidence(n=1, hit=hit, quote=quote, quote_start=0, quote_end=len(quote), score=0.82)]
    question = "x What did the OIC condemn?"
    assert table.equivalents(question) == {"OIC": ["İƏT"]}
    assert grounding.missing_question_names(question, evidence) == ["OIC"]
    assert grounding.missing_question_names(question, evidence, table.equivalents(question)) == []
