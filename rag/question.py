"""The question as every later step sees it: cleaned once, its language detected once, its vectors computed once.

`Question` is built by `Assistant.question()` and passed down to retrieval, evidence selection and the answer
decision, so no step cleans, detects or encodes the question again (and none can disagree with another about it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .grounding import name_spellings, question_names
from .language import detect_language
from .lexical import name_terms, tokenize

ANSWER_LANGUAGES = ("az", "ru", "en")

# What kind of fact the question asks for, in the three languages. The answer sentence of a "how many" question
# has a number the question lacks; that of a "who" or "where" question names someone or somewhere new.
_ASKS_FOR_NUMBER = re.compile(
    r"\b(when|what (date|day|year|time|minute)|how (many|much|long|old)|which (date|day|year|minute)"
    r"|когда|сколько|какого числа|в каком году|на какой минуте|какой (дат|год|день)"
    r"|nə vaxt|nə zaman|nə qədər\w*|hansı (tarix|gün|il|dəqiqə)\w*|neçə\w*)\b",
    re.IGNORECASE,
)
_ASKS_FOR_NAME = re.compile(
    r"\b(who|whom|whose|where|which|кто|кого|кому|кем|чей|чья|чьё|чье|чьи|где|куда|откуда|как\w* "
    r"|kim\w*|hara\w*|hansı)",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Question:
    """One question, ready for search and evidence selection."""

    text: str  # what is searched: the question cleaned, or a follow-up rewritten to stand alone
    lang: str  # the language `text` is written in
    answer_lang: str  # the language of the answer: the question's, or the one the caller asked for
    vector: np.ndarray = field(repr=False)  # the embedding of `text` as a query
    # Per corpus language, the question's vector with its acronyms written that language's way (see aliases.py).
    variants: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    asked: str = ""  # as the user typed it (cleaned), before any rewrite
    # Other spellings that count as mentioning a word of the question: the corpus's acronyms in other
    # languages (OIC -> İƏT), see aliases.py.
    equivalents: dict[str, list[str]] = field(default_factory=dict)

    @property
    def vectors(self) -> np.ndarray:
        """The question's vector and its variants, one row each: a sentence matches by the best of them."""
        return np.stack([self.vector, *self.variants.values()])

    @property
    def terms(self) -> frozenset[str]:
        return frozenset(tokenize(self.text))

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(_DIGITS.findall(self.text))

    @property
    def names(self) -> list[str]:
        """The names the question mentions (question words left out), those that have index terms."""
        return [name for name in question_names(self.text) if name_terms(name)]

    def name_spellings(self) -> list[set[str]]:
        """Per name of the question, the index terms of every spelling that counts as mentioning it."""
        return [name_spellings(name, self.equivalents) for name in self.names]

    @property
    def asks_for_number(self) -> bool:
        return bool(_ASKS_FOR_NUMBER.search(self.text))

    @property
    def asks_for_name(self) -> bool:
        return bool(_ASKS_FOR_NAME.search(self.text))


def answer_language(text: str, reply_lang: str | None = None) -> str:
    """The language to answer in: the one asked for, else the question's when it is one of ours, else English."""
    if reply_lang:
        return reply_lang
    lang = detect_language(text)
    return lang if lang in ANSWER_LANGUAGES else "en"
