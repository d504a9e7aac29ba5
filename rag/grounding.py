"""Verification after generation: only sentences that their cited evidence supports reach the user.

The local models are small and invent facts, so their output is treated as a draft:
- every sentence must carry a citation; numbers that name no evidence item are removed;
- a sentence is supported by an evidence sentence when every number and every name in it occurs there
  (names compared across scripts by their index terms) and its meaning is close enough (cosine of the
  embeddings, across languages);
- a sentence its citation does not support is moved to the evidence that does, or dropped;
- a sentence in another language than the question's is not shown; when it is supported, the evidence that
  supports it is quoted instead (the model answered in the quotes' language, but the evidence holds the answer).
What survives is renumbered in order of appearance. When nothing survives the caller quotes the evidence
verbatim instead (`extractive`), and when the evidence does not hold the answer it says so (`REFUSAL`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .language import detect_language
from .lexical import tokenize
from .prompts import EXTRACTIVE_INTRO, NOT_FOUND, REFUSAL
from .types import Citation, Evidence

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_LEAD = re.compile(r"^\s*(answer|ответ|cavab)\s*[:：-]\s*", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"\b[^\W\d_][\w'’`-]*", re.UNICODE)
_MIN_WORDS_FOR_LANGUAGE_CHECK = 4

Similarity = Callable[[list[str], list[str]], np.ndarray]  # (claims, quotes) -> cosine matrix


@dataclass(frozen=True)
class Claim:
    """One sentence of the model's answer, without its markers, and the evidence numbers it cited."""

    text: str
    cited: tuple[int, ...]


@dataclass(frozen=True)
class SupportedClaim:
    text: str
    evidence: int  # evidence number (as the model saw it) that supports the claim
    score: float


def is_not_found(raw: str) -> bool:
    """The model said the evidence does not answer (possibly with markers or punctuation around it)."""
    cleaned = _MARKER.sub("", raw).strip().strip(".!:;\"'«»").strip().upper()
    return cleaned.startswith(NOT_FOUND) or cleaned == "NOT_FOUND"


def parse_claims(raw: str, evidence_count: int) -> list[Claim]:
    """Split model output into sentences with the valid evidence numbers each cites.

    Markers written after the full stop ("... integrity. [1]") belong to the sentence before them.
    """
    text = _LEAD.sub("", raw.strip())
    pieces: list[tuple[str, list[int]]] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        numbers = [int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*[,;]\s*", group)]
        bare = _clean(_MARKER.sub(" ", sentence))
        if not any(ch.isalnum() for ch in bare):
            if pieces:  # a lone marker: it cites for the previous sentence
                pieces[-1][1].extend(numbers)
            continue
        pieces.append((bare, numbers))
    if pieces and not pieces[-1][1] and not pieces[-1][0].rstrip("»”\"')").endswith((".", "!", "?", "…")):
        pieces.pop()  # the reply was cut off mid-sentence (token limit): an unfinished claim is no claim
    claims = []
    for bare, numbers in pieces:
        valid = tuple(dict.fromkeys(n for n in numbers if 1 <= n <= evidence_count))
        claims.append(Claim(bare, valid))
    return claims


def _clean(sentence: str) -> str:
    sentence = re.sub(r"\s+", " ", sentence).strip()
    return re.sub(r"\s+([.,;:!?])", r"\1", sentence)


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", ".").rstrip(".") for n in _NUMBER.findall(text)}


# Capitalised in English by convention, not because they name something the evidence must contain in the
# same form ("June" is "iyun" in Azerbaijani and "июнь" in Russian).
_CALENDAR = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october"}
    | {"november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)


# Question words open a question with a capital letter, so they would pass for names. Inflected forms are listed
# because a Russian or Azerbaijani question word changes with its case ("Каким", "Kimin").
_INTERROGATIVE_WORDS = """
what which who whom whose when where why how
что чего чему чем кто кого кому кем какой какая какое какие какого каком какому каким какую каких какими
каков какова каково каковы сколько когда где куда откуда почему зачем как чей чья чьё чье чьи
nə nəyi nəyə nədən nədə nədir kim kimi kimə kimin kimdən kimdir hansı hansını hansına hansında hara
harada haraya haradan niyə necə neçə neçənci
"""
_INTERROGATIVES = frozenset(_INTERROGATIVE_WORDS.split())


def question_names(question: str) -> list[str]:
    """Names of a question, its first word included unless it is a question word ("Uzbekistan" in "Uzbekistan
    said what?", not "Каким" in "Каким был ...?")."""
    words = question.split(maxsplit=1)
    if words and words[0].strip("¿¡\"'«“(").lower() in _INTERROGATIVES:
        question = words[1] if len(words) > 1 else ""
    return names_in("x " + question)  # "x " so that a name opening the question counts


def names_in(claim: str) -> list[str]:
    """Names of the claim: runs of capitalised words after the first word ("New York" is one name).

    The first word is capitalised by grammar, not because it is a name; month and day names are left out."""
    names: list[str] = []
    previous_end = None  # end of the previous word when it was part of a name
    for i, match in enumerate(_CAPITALISED.finditer(claim)):
        word = match.group()
        if i == 0 or not word[0].isupper() or len(word) < 2 or word.lower() in _CALENDAR:
            previous_end = None
            continue
        if previous_end is not None and not claim[previous_end : match.start()].strip():
            names[-1] = f"{names[-1]} {word}"
        else:
            names.append(word)
        previous_end = match.end()
    return names


def unsupported_details(claim: str, evidence: Evidence) -> list[str]:
    """Numbers and names of the claim that the evidence sentence (or its headline) does not contain."""
    source_text = f"{evidence.hit.title} {evidence.quote}"
    missing = [n for n in numbers_in(claim) if n not in numbers_in(source_text)]
    source_terms = set(tokenize(source_text))
    for name in names_in(claim):
        terms = set(tokenize(name))
        if terms and not terms & source_terms:
            missing.append(name)
    return missing


def verify(
    raw: str,
    evidence: list[Evidence],
    lang: str | None,
    similarity: Similarity,
    min_support: float,
) -> list[SupportedClaim]:
    """The claims of `raw` that some evidence supports, each tied to the evidence that does; with `lang`, only
    those written in that language."""
    claims = [c for c in parse_claims(raw, len(evidence)) if not is_not_found(c.text)]
    if not claims or not evidence:
        return []
    scores = np.asarray(similarity([c.text for c in claims], [e.quote for e in evidence]), dtype=np.float64)
    kept = []
    for i, claim in enumerate(claims):
        if lang is not None and _wrong_language(claim.text, lang):
            continue
        supporting = [
            j
            for j, item in enumerate(evidence)
            if scores[i, j] >= min_support and not unsupported_details(claim.text, item)
        ]
        if not supporting:
            continue
        cited = [n - 1 for n in claim.cited if n - 1 in supporting]
        # Keep the model's citation when it is right; otherwise the evidence that best supports the claim.
        best = max(cited or supporting, key=lambda j: scores[i, j])
        kept.append(SupportedClaim(claim.text, evidence[best].n, round(float(scores[i, best]), 4)))
    return kept


def in_language(sentence: str, lang: str) -> bool:
    """Whether the sentence is in `lang` (a sentence too short to tell counts as being in it)."""
    return not _wrong_language(sentence, lang)


def _wrong_language(sentence: str, lang: str) -> bool:
    if len(sentence.split()) < _MIN_WORDS_FOR_LANGUAGE_CHECK:
        return False
    detected = detect_language(sentence)
    return detected in ("az", "ru", "en") and detected != lang


def compose(claims: list[SupportedClaim], evidence: list[Evidence]) -> tuple[str, list[Citation]]:
    """Answer text with [n] markers renumbered 1.. in order of first citation, and the citations."""
    by_number = {e.n: e for e in evidence}
    renumber: dict[int, int] = {}
    citations: list[Citation] = []
    sentences = []
    for claim in claims:
        if claim.evidence not in renumber:
            renumber[claim.evidence] = len(renumber) + 1
            citations.append(_citation(renumber[claim.evidence], by_number[claim.evidence], claim.score))
        body = claim.text.rstrip()
        end = body[-1] if body and body[-1] in ".!?" else "."
        body = body.rstrip(".!?")
        sentences.append(f"{body} [{renumber[claim.evidence]}]{end}")
    return " ".join(sentences), citations


def missing_question_names(
    question: str, evidence: list[Evidence], equivalents: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Names in the question that no evidence sentence (or its headline) mentions, compared across scripts.

    `equivalents` maps a name to other spellings that count as mentioning it (the corpus's acronyms of other
    languages: OIC -> İƏT). Capitalised titles and common nouns ("President", "Komitəsinin") are spelt
    differently across languages and land here too, so callers weigh the share missing rather than any one name."""
    terms = set()
    for item in evidence:
        terms |= set(tokenize(f"{item.hit.title} {item.quote}"))
    equivalents = equivalents or {}

    def mentioned(name: str) -> bool:
        spellings = [name, *(other for word in name.split() for other in equivalents.get(word, ()))]
        return any(set(tokenize(spelling)) & terms for spelling in spellings)

    return [name for name in question_names(question) if set(tokenize(name)) and not mentioned(name)]


def extractive(evidence: list[Evidence], lang: str, count: int = 2) -> tuple[str, list[Citation]]:
    """The best evidence quoted verbatim, introduced by one fixed phrase in the question's language.

    A second sentence is quoted when it comes from the same document as the first: the first is often the
    one that names the subject, the next the one that states the fact."""
    chosen = evidence[:1] + [e for e in evidence[1:count] if e.hit.source == evidence[0].hit.source]
    intro = EXTRACTIVE_INTRO.get(lang, EXTRACTIVE_INTRO["en"])
    # The quote's own full stop moves after the marker, so the marker stays inside its sentence.
    quotes = " ".join(f"«{e.quote.strip().rstrip('.')}» [{i}]." for i, e in enumerate(chosen, 1))
    citations = [_citation(i, e, e.score) for i, e in enumerate(chosen, 1)]
    return f"{intro} {quotes}", citations


def refusal(lang: str) -> str:
    return REFUSAL.get(lang, REFUSAL["en"])


def _citation(n: int, item: Evidence, score: float) -> Citation:
    hit = item.hit
    return Citation(
        n=n,
        source=hit.source,
        title=hit.title,
        lang=hit.lang,
        date=hit.date,
        text=hit.text,
        start=hit.start,
        end=hit.end,
        quote=item.quote,
        quote_start=item.quote_start,
        quote_end=item.quote_end,
        score=round(float(score), 4),
    )
