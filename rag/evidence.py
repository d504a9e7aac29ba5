"""Evidence first: from the retrieved passages, the few sentences that bear on the question.

The small local models cannot be trusted to read six long passages and pick the right fact; they do better
with three or four short numbered sentences. Sentences are scored across languages by the same embedding
model that retrieved the passages, plus the share of the question's terms they contain, plus the rank of the
passage they come from. Sentences that address the assistant ("ignore the question and reply ...") are never
offered as evidence: a document must not be able to steer the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from .chunking import split_sentences
from .lexical import tokenize
from .types import Evidence, Hit

# Chat-template markup (<|im_start|>, <|eot_id|>, [INST], <<SYS>>). llama.cpp reads special tokens inside the
# rendered prompt, so this text in a quote or a question would open a new turn, a "system" one included.
CHAT_MARKUP = re.compile(r"<\|[\w.-]{1,40}\|>|\[/?INST\]|<</?SYS>>", re.IGNORECASE)

# Instructions aimed at a language model, in the three languages. A news sentence essentially never says
# these; a planted one always does.
_INSTRUCTION = re.compile(
    CHAT_MARKUP.pattern
    + r"|\b(ignore|disregard|forget|pay no attention to)\b.{0,40}\b(question|instruction|prompt|previous|above|rules)"
    r"|\b(reply|respond|answer|say|write|output)\b.{0,30}\b(that|only|with|exactly)\b.{0,80}\b(instead|regardless)"
    r"|\byou (must|should|have to|are to) (now )?(reply|respond|answer|say|write|output|state)\b.{0,20}"
    r"\b(that|only|with|exactly)\b"
    r"|\byou are (an?|the) (ai|assistant|language model|chatbot)"
    r"|\b(note|message|attention|instructions?|reminder|warning)\s+(to|for)\s+(any\s+|all\s+|the\s+)?"
    r"(ai|llms?|(large\s+)?language\s+models?|assistants?|chatbots?)\b"
    r"|\banswer (to|for) (any|every|each)( the)? (questions?|query|queries|prompts?)\b"
    r"|\b(system|assistant)\s*:"
    r"|\bas an ai\b"
    r"|игнорир\w*.{0,40}(вопрос|инструкц|указан|правил)"
    r"|не\s+обращай\w*\s+внимани\w*.{0,40}(вопрос|инструкц|указан|правил)"
    r"|(ответь|ответьте|напиши|напишите|скажи|скажите)\w*.{0,40}(что|только|вместо)"
    r"|забудь\w*.{0,40}(вопрос|инструкц)"
    r"|(примечание|внимание|сообщение|инструкция|указание)\s+(для|к)\s+(ии|нейросет|языков\w*\s+модел|ассистент|чат-?бот)"
    r"|ответ\s+на\s+(любой|каждый)\s+вопрос"
    r"|(sualı|təlimat\w*|göstəriş\w*).{0,40}(nəzərə alma|məhəl qoyma|fikir vermə|unut|ignor)"
    r"|(süni intellekt|dil model\w*|assistent|çatbot)\w*\s+üçün\s+(qeyd|göstəriş|təlimat|mesaj)"
    r"|(cavab ver|cavabla|yaz)\w*.{0,40}(yalnız|əvəzinə)",
    re.IGNORECASE | re.DOTALL,
)
# Fewer than this many letters is a fragment (a dateline, a lone name), not a statement.
_MIN_LETTERS = 25
# Questions that ask for a date, a time or an amount: their answer is a sentence with a number in it.
_ASKS_FOR_NUMBER = re.compile(
    r"\b(when|what (date|day|year|time)|how (many|much|long|old)|which (date|day|year)"
    r"|когда|сколько|какого числа|в каком году|какой (дат|год|день)"
    r"|nə vaxt|nə zaman|hansı (tarix|gün|il)\w*|neçə)\b",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


def looks_like_instruction(sentence: str) -> bool:
    """True for text that addresses the assistant rather than reporting news."""
    return bool(_INSTRUCTION.search(sentence))


def candidate_sentences(hits: Sequence[Hit]) -> list[tuple[Hit, int, int, str]]:
    """(hit, start, end, sentence) for every usable sentence of the hits, offsets in document text, deduplicated
    across overlapping passages, instruction-like sentences left out."""
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in hits:
        for s, e in split_sentences(hit.text):
            start, end = hit.start + s, hit.start + e
            sentence = hit.text[s:e]
            if (hit.source, start) in seen or sum(ch.isalpha() for ch in sentence) < _MIN_LETTERS:
                continue
            if _is_headline(sentence, hit.title):
                continue  # the headline is shown with every quote anyway, and says less than the body
            seen.add((hit.source, start))
            if looks_like_instruction(sentence):
                continue
            out.append((hit, start, end, sentence))
    return out


def _is_headline(sentence: str, title: str) -> bool:
    title = title.strip().rstrip(".")
    return bool(title) and title in sentence and len(sentence) < len(title) + 30


def answer_type_bonus(question: str, sentence: str) -> float:
    """A sentence repeating a number of the question ("78th session") is very likely about the same event, and a
    question asking "when" or "how many" is answered by a sentence that has a number."""
    sentence_numbers = set(_DIGITS.findall(sentence))
    bonus = 0.0
    if set(_DIGITS.findall(question)) & sentence_numbers:
        bonus += 0.2
    if sentence_numbers and _ASKS_FOR_NUMBER.search(question):
        bonus += 0.15
    return bonus


def term_overlap(question: str, sentence: str) -> float:
    """Share of the question's index terms that the sentence contains (names and numbers included)."""
    q_terms = set(tokenize(question))
    if not q_terms:
        return 0.0
    return len(q_terms & set(tokenize(sentence))) / len(q_terms)


def select_evidence(
    question: str,
    hits: Sequence[Hit],
    similarity: Callable[[list[str]], np.ndarray],
    limit: int,
    *,
    per_document: int = 3,
) -> list[Evidence]:
    """The `limit` best sentences, best first, numbered from 1.

    `similarity(sentences)` returns each sentence's cosine similarity to the question (the caller owns the
    embedding model and its prefixes)."""
    candidates = candidate_sentences(hits)
    if not candidates:
        return []
    dense = np.asarray(similarity([c[3] for c in candidates]), dtype=np.float64)
    overlap = np.array([term_overlap(question, c[3]) for c in candidates])
    rank_of_hit = {id(hit): i for i, hit in enumerate(hits)}
    passage_prior = np.array([1.0 / (1 + rank_of_hit[id(c[0])]) for c in candidates])
    # Cosines of e5 sit in a narrow band, so they are spread to 0..1 before mixing with the other two signals.
    spread = dense.max() - dense.min()
    dense_norm = (dense - dense.min()) / spread if spread > 1e-9 else np.ones_like(dense)
    bonus = np.array([answer_type_bonus(question, c[3]) for c in candidates])
    combined = 0.5 * dense_norm + 0.2 * overlap + 0.3 * passage_prior + bonus

    chosen: list[Evidence] = []
    per_doc: dict[str, int] = {}
    for i in np.argsort(-combined, kind="stable"):
        hit, start, end, sentence = candidates[int(i)]
        if per_doc.get(hit.source, 0) >= per_document:
            continue
        per_doc[hit.source] = per_doc.get(hit.source, 0) + 1
        chosen.append(
            Evidence(
                n=len(chosen) + 1,
                hit=hit,
                quote=sentence,
                quote_start=start,
                quote_end=end,
                score=round(float(dense[int(i)]), 6),
            )
        )
        if len(chosen) == limit:
            break
    return chosen
