"""Sentence splitting and passage packing: offsets slice to the text; sizes and overlap as specified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.chunking import chunk_spans, make_passages, split_sentences
from rag.documents import load_document
from rag.types import Document

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
NTREX = ROOT.parent / "shared" / "eval" / "ntrex_az_ru_en_docs.jsonl"
SETTINGS = [(600, 150), (300, 0), (200, 80), (1000, 300), (120, 60), (50, 20)]


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def passages(text: str, size: int, overlap: int) -> list[str]:
    return [text[s:e] for s, e in chunk_spans(text, size, overlap)]


# Sentences --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "C.Bayramov, Azərbaycanın İƏT-ə üzv olduğunu bildirib. Bu barədə X.Xələfov danışıb.",
            ["C.Bayramov, Azərbaycanın İƏT-ə üzv olduğunu bildirib.", "Bu barədə X.Xələfov danışıb."],
        ),
        (
            "Nazir müavini B.Usmanov bildirib. ABŞ Dövlət katibi zəng edib. Görüş ABŞ. Sonra davam edib.",
            [
                "Nazir müavini B.Usmanov bildirib.",
                "ABŞ Dövlət katibi zəng edib.",
                "Görüş ABŞ.",
                "Sonra davam edib.",
            ],
        ),
        (
            "Это т.е. пример. Вопросы экономики и т.д. Новый абзац.",
            ["Это т.е. пример.", "Вопросы экономики и т.д.", "Новый абзац."],
        ),
        (
            "В 2020 г. Президент приехал в г. Баку. Встреча прошла в Москве.",
            ["В 2020 г.", "Президент приехал в г. Баку.", "Встреча прошла в Москве."],
        ),
        (
            "The U.S. Embassy said so. Mr. Smith met Dr. Jones at No. 5 Downing Street. Growth was 3.5 percent.",
            [
                "The U.S. Embassy said so.",
                "Mr. Smith met Dr. Jones at No. 5 Downing Street.",
                "Growth was 3.5 percent.",
            ],
        ),
        (
            "The statements were signed on 10.11.2020 in Moscow. Wait... What? Then silence… and more.",
            [
                "The statements were signed on 10.11.2020 in Moscow.",
                "Wait...",
                "What?",
                "Then silence… and more.",
            ],
        ),
        (
            "Он сказал: «Мы придём.» Потом «Почему?» — спросил он. “Yes.” She left.",
            ["Он сказал: «Мы придём.»", "Потом «Почему?» — спросил он.", "“Yes.”", "She left."],
        ),
        (
            "Headline without a full stop\nNext line. Second sentence.\n\nA paragraph",
            ["Headline without a full stop", "Next line.", "Second sentence.", "A paragraph"],
        ),
        (
            "J. Bayramov met В.В. Путин and Дж. Байден. 1. First item",
            ["J. Bayramov met В.В. Путин and Дж. Байден.", "1. First item"],
        ),
    ],
)
def test_sentence_boundaries(text, expected):
    assert sentences(text) == expected


def test_sentence_spans_cover_all_text_and_are_stripped():
    text = "  Başlıq  \n\n\tBirinci cümlə.   İkinci cümlə!\n«Üçüncü?»  Dördüncü…\n \n"
    spans = split_sentences(text)
    assert all(text[s:e] == text[s:e].strip() and s < e for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    covered = {i for s, e in spans for i in range(s, e)}
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())


def test_empty_and_blank_text_have_no_sentences_or_passages():
    assert split_sentences("") == [] and split_sentences(" \n\n\t ") == []
    assert chunk_spans("", 100, 10) == [] and chunk_spans("\n\n", 100, 10) == []


# Packing ----------------------------------------------------------------------------------------------------

BODY = " ".join(f"Sentence number {i} is here." for i in range(1, 41))


def test_sentences_are_packed_up_to_the_size():
    chunks = passages(BODY, 100, 0)
    assert all(len(c) <= 100 for c in chunks)
    assert all(c.startswith("Sentence") and c.endswith(".") for c in chunks)
    # Greedy: adding the next sentence would have exceeded the size.
    assert all(len(c) + 1 + len("Sentence number 10 is here.") > 100 for c in chunks[:-1])
    assert " ".join(chunks) == BODY


def test_no_overlap_when_overlap_is_zero():
    spans = chunk_spans(BODY, 100, 0)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_overlap_repeats_whole_trailing_sentences_within_the_budget():
    text = BODY
    sentence_starts = {s for s, _ in split_sentences(text)}
    spans = chunk_spans(text, 120, 60)
    assert len(spans) > 5
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert s1 < s2 < e1, "each passage starts inside the previous one"
        assert s2 in sentence_starts
        assert e1 - s2 <= 60
        # As many trailing sentences as fit: one more would break the overlap budget or the size.
        earlier = max(s for s in sentence_starts if s < s2)
        assert earlier <= s1 or e1 - earlier > 60 or e2 - earlier > 120


def test_overlap_never_repeats_a_whole_passage():
    text = "Short one. " + "A much longer sentence that fills most of the passage on its own, really. " * 2
    spans = chunk_spans(text.strip(), 100, 90)
    starts = [s for s, _ in spans]
    assert starts == sorted(set(starts))


def test_a_sentence_longer_than_the_size_is_split_at_whitespace():
    long_sentence = "Word " + "word " * 59 + "end."
    text = f"Before it. {long_sentence} After it."
    chunks = passages(text, 50, 20)
    assert all(len(c) <= 50 for c in chunks)
    assert chunks[0] == "Before it."
    assert chunks[-1] == "After it."
    pieces = chunks[1:-1]
    assert pieces[0].startswith("Word") and pieces[-1].endswith("end.")
    assert " ".join(pieces) == long_sentence


def test_an_unbreakable_token_is_cut_at_the_size():
    text = "x" * 130
    assert passages(text, 50, 0) == ["x" * 50, "x" * 50, "x" * 30]


SECTIONS = (
    "Birinci bölmə\n\n"
    "Birinci bölmənin birinci cümləsi. Birinci bölmənin ikinci cümləsi.\n\n"
    "İkinci bölmə\n\n"
    "İkinci bölmənin yeganə cümləsi.\n\n"
    "Prezidentin Mətbuat Xidməti"
)


def test_a_new_section_starts_a_new_passage_without_overlap():
    chunks = passages(SECTIONS, 600, 150)
    assert chunks == [
        "Birinci bölmə\n\nBirinci bölmənin birinci cümləsi. Birinci bölmənin ikinci cümləsi.",
        "İkinci bölmə\n\nİkinci bölmənin yeganə cümləsi.\n\nPrezidentin Mətbuat Xidməti",
    ]


def test_paragraphs_without_headings_are_joined():
    text = "Birinci paraqraf bitir.\n\nİkinci paraqraf bitir.\n\nÜçüncü paraqraf bitir."
    assert passages(text, 600, 0) == [text]


def test_markdown_headings_start_sections():
    text = "# Title\n\nIntro sentence here.\n\n## Details of the meeting.\n\nMore text follows."
    assert passages(text, 600, 100) == [
        "# Title\n\nIntro sentence here.",
        "## Details of the meeting.\n\nMore text follows.",
    ]


def test_make_passages_carries_document_identity():
    doc = Document("id1", "a/b.txt", "T", None, "az", SECTIONS, "h")
    result = make_passages(doc, 600, 150)
    assert [p.text for p in result] == passages(SECTIONS, 600, 150)
    assert all(p.doc_id == "id1" and p.source == "a/b.txt" for p in result)


# Offsets over real text -------------------------------------------------------------------------------------


def check_passages(doc: Document, size: int, overlap: int) -> None:
    result = make_passages(doc, size, overlap)
    assert result, doc.source
    covered = bytearray(len(doc.text))
    for p in result:
        assert 0 <= p.start < p.end <= len(doc.text)
        assert doc.text[p.start : p.end] == p.text
        assert p.text == p.text.strip()
        assert len(p.text) <= size, (doc.source, size, p.text)
        covered[p.start : p.end] = b"\1" * (p.end - p.start)
    assert all(covered[i] or c.isspace() for i, c in enumerate(doc.text)), doc.source
    starts = [p.start for p in result]
    assert starts == sorted(set(starts))
    if overlap == 0:
        assert all(a.end < b.start for a, b in zip(result, result[1:], strict=False))
    else:
        assert all(a.end - b.start <= overlap for a, b in zip(result, result[1:], strict=False))


@pytest.mark.parametrize("size, overlap", SETTINGS)
def test_seed_passages_slice_the_document_text(size, overlap):
    for path in sorted(SEEDS.glob("*.txt")):
        check_passages(load_document(path, SEEDS, 10 * 1024 * 1024), size, overlap)


def ntrex_documents() -> list[Document]:
    if not NTREX.exists():
        pytest.skip(f"evaluation data not found at {NTREX}")
    docs = []
    with NTREX.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            for lang in ("az", "ru", "en"):
                source = f"{record['doc_id']}.{lang}"
                docs.append(Document(source, source, record[f"title_{lang}"], None, lang, record[lang], ""))
    return docs


def test_ntrex_passages_slice_the_document_text():
    docs = ntrex_documents()
    assert len(docs) == 123 * 3
    for size, overlap in SETTINGS:
        for doc in docs:
            check_passages(doc, size, overlap)
