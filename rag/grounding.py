"""Grounding: what is shown as an answer is the evidence itself, quoted, or a checked translation of it.

The local models are small and invent facts (and who did what to whom) when they write freely, so they never
write an answer here. The answer is built from the evidence sentences that `decision.decide` chose:
- a sentence in the answer's language is quoted verbatim;
- a sentence in another language is machine-translated into the answer's language, and the translation is shown
  only after it passes `check_translation` (numbers, months, language, untranslated words, names across scripts,
  and meaning: see there);
- when a translation fails, the quote is shown as it is, behind one fixed phrase in the answer's language.
Every sentence of the answer ends with the [n] of the citation it rests on; a refusal is one fixed phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .citations import marker
from .exonyms import place_ids
from .language import detect_language
from .lexical import name_stems, name_terms
from .prompts import EXTRACTIVE_INTRO, REFUSAL
from .types import Citation, Evidence

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"\b[^\W\d_][\w'’`-]*", re.UNICODE)
# A quote's names must be found in its translation; spelling across scripts differs too much for all of them
# ("ABŞ" is "США", "Луна" is "Moon"), so half is enough while numbers must all match.
_NAMES_KEPT = 0.5
# One shared lower-case word can be a word of both languages ("regional" is English and Azerbaijani); more is
# a translation that left the quote's words as they were.
_COPIED_WORDS_ALLOWED = 1
_LOWER_WORD = re.compile(r"(?<![\w'’])[^\W\d_A-ZÀ-ÖØ-ÞА-ЯЁƏİÖÜĞŞÇ][^\W\d_]*", re.UNICODE)
# Letters only Azerbaijani uses among the three languages: in an English or Russian translation they are words
# (or names) left untranslated, which also inflate the translation's similarity to its quote.
_AZERBAIJANI_LETTERS = re.compile(r"[əƏğĞıİşŞçÇöÖüÜ]")
# A word with Latin and Cyrillic letters both, a lower-case Latin word of four letters or more, a Cyrillic letter.
_MIXED_SCRIPT_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[А-Яа-яЁё])\w+\b")
_LATIN_LOWER_WORD = re.compile(r"(?<![\w'’-])[a-z]{4,}(?![\w'’-])")
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# Letters Azerbaijani writes and Turkish does not (q other than in "qu"). The small models write Turkish when asked
# for Azerbaijani, and the language detector cannot always tell the two apart (it took five Turkish translations
# for Azerbaijani in one NTREX-QA run); 2,839 of 2,848 Azerbaijani sentences of four words or more (FLORES-200 and
# NTREX) have one of these letters, and the nine without are short.
_NOT_TURKISH = re.compile(r"[əƏxX]|q(?!u)|Q(?!u)")
# A word or phrase said three times in a row: a small model's generation loop, never a translation.
_LOOP = re.compile(r"\b(\w+(?:\W+\w+){0,2})(?:\W+\1\b){2,}", re.UNICODE)
_DATE_TOKEN = re.compile(r"\d[\w-]*|[^\W\d_]+")
# Month name stems in en / az / ru.
_MONTH_STEMS = tuple(
    (stem, month)
    for month, stems in enumerate(
        [
            ("january", "yanvar", "январ"),
            ("february", "fevral", "феврал"),
            ("march", "mart", "март"),
            ("april", "aprel", "апрел"),
            ("may", "мая", "май"),
            ("june", "iyun", "июн"),
            ("july", "iyul", "июл"),
            ("august", "avqust", "август"),
            ("september", "sentyabr", "сентябр"),
            ("october", "oktyabr", "октябр"),
            ("november", "noyabr", "ноябр"),
            ("december", "dekabr", "декабр"),
        ],
        1,
    )
    for stem in stems
)
_THOUSANDS = re.compile(r"(?<=\d)[\s\u00a0\u202f,.](?=\d{3}(?!\d))")
# Words that multiply the number before them, in en / az / ru, by the power of ten they stand for. Azerbaijani
# "min" (thousand: "100 minə qədər") counts only after a number, where it is not the verb "minmək" (to ride), and
# not as "minut"; "$5m" and "£120m" are English news style for millions.
_SCALES = (
    (3, r"thousands?|min(?!ut)\w*|тысяч\w*|тыс\b"),
    (6, r"millions?|mln\b|milyon\w*|миллион\w*|млн\b"),
    (9, r"billions?|bn\b|milyard\w*|миллиард\w*|млрд\b"),
    (12, r"trillions?|trilyon\w*|триллион\w*|трлн\b"),
)
_SCALED_NUMBER = re.compile(
    r"\d(?:[\d.,\s\u00a0\u202f]*\d)?[\s\u00a0\u202f-]*(?:" + "|".join(f"(?P<e{p}>{w})" for p, w in _SCALES) + ")",
    re.IGNORECASE,
)
_CURRENCY_MILLIONS = re.compile(r"[$£€]\s?\d[\d.,]*m\b")

Similarity = Callable[[list[str], list[str]], np.ndarray]  # (texts, texts) -> cosine matrix
Alignment = Callable[[str, str], float]  # (text, its translation) -> word_alignment of their token vectors


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", ".").rstrip(".") for n in _NUMBER.findall(text)}


def scales_in(text: str) -> set[int]:
    """The powers of ten that scale a text's numbers ("100 minə qədər" -> {3}, "200 млрд долларов" -> {9}), so
    that a translation cannot turn a hundred thousand into a hundred million while keeping the digits."""
    found = {int(name[1:]) for m in _SCALED_NUMBER.finditer(text) for name, word in m.groupdict().items() if word}
    return found | ({6} if _CURRENCY_MILLIONS.search(text) else set())


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


def is_question_word(word: str) -> bool:
    """ "Каким", "Who", "hansı": a word that opens a question by grammar, not a name."""
    return word.strip("¿¡\"'«“(").lower() in _INTERROGATIVES


def question_names(question: str) -> list[str]:
    """Names of a question, its first word included unless it is a question word ("Uzbekistan" in "Uzbekistan
    said what?", not "Каким" in "Каким был ...?")."""
    words = question.split(maxsplit=1)
    if words and is_question_word(words[0]):
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


def missing_question_names(
    question: str, evidence: list[Evidence], equivalents: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Names in the question that no evidence sentence (or its headline) mentions, compared across scripts.

    `equivalents` maps a name to other spellings that count as mentioning it (the corpus's acronyms of other
    languages: OIC -> İƏT). Capitalised titles and common nouns ("President", "Komitəsinin") are spelt
    differently across languages and land here too, so callers weigh the share missing rather than any one name."""
    terms: set[str] = set()
    for item in evidence:
        terms |= name_terms(f"{item.hit.title} {item.quote}")
    return [
        name
        for name in question_names(question)
        if name_terms(name) and not name_spellings(name, equivalents or {}) & terms
    ]


def name_spellings(name: str, equivalents: Mapping[str, Iterable[str]]) -> set[str]:
    """The index terms of a name and of every other spelling that counts as mentioning it (`equivalents` maps a
    word to the corpus's acronyms for it in other languages: OIC -> İƏT)."""
    terms = set(name_terms(name))
    for word in name.split():
        for other in equivalents.get(word, ()):
            terms |= name_terms(other)
    return terms


@dataclass(frozen=True)
class TranslationCheck:
    """Why a translation may or may not be shown as one."""

    ok: bool
    problem: str = ""  # what failed: "empty", "numbers", "dates", "language", "repeated", "untranslated", "names",
    # "meaning", "alignment"


def check_translation(
    quote: str,
    translation: str,
    target_lang: str,
    others: Sequence[str],
    similarity: Similarity,
    min_similarity: float,
    alignment: Alignment | None = None,
    min_alignment: float = 0.0,
) -> TranslationCheck:
    """Whether `translation` says what `quote` says, as far as can be checked without a second model.

    Numbers must match exactly, with the words that scale them (thousand, million...); the translation must be
    in `target_lang` (Azerbaijani with a letter Turkish lacks), repeat no word or phrase three times in a row
    unless the quote does, and leave no run of the quote's words untranslated and no word in the other script;
    half of the quote's names must be in it, compared by their index terms (which fold scripts: "Рид" and "Reed"
    share a sound key), their first four letters ("Afrikada" / "Africa") or the place they name ("ABŞ" /
    "США"); and by meaning it must be at least `min_similarity` close to its quote (a cosine as high as most
    human translations reach, see bench/calibrate.py) and closer to it than to any of `others` (the other
    evidence sentences), so that a garbled translation, or a fluent one of something else, fails. With
    `alignment`, its words must also line up with the quote's, at least `min_alignment` (see word_alignment):
    a sentence-level cosine still lets through a fluent sentence on the same subject that says another thing."""
    if not translation.strip():
        return TranslationCheck(False, "empty")
    if numbers_in(_joined_thousands(quote)) != numbers_in(_joined_thousands(translation)):
        return TranslationCheck(False, "numbers")
    if scales_in(quote) != scales_in(translation):
        return TranslationCheck(False, "numbers")  # "100 min" (thousand) is not "100 миллионов"
    if months_in(quote) != months_in(translation):
        return TranslationCheck(False, "dates")
    if len(translation.split()) >= 4 and (
        detect_language(translation) != target_lang or (target_lang == "az" and not _NOT_TURKISH.search(translation))
    ):
        return TranslationCheck(False, "language")
    if _LOOP.search(translation) and not _LOOP.search(quote):
        return TranslationCheck(False, "repeated")
    if target_lang != "az" and _AZERBAIJANI_LETTERS.search(translation):
        return TranslationCheck(False, "untranslated")  # "ABŞ Dövlət katibi" left as it was
    if len(_common_words(quote, translation)) > _COPIED_WORDS_ALLOWED:
        return TranslationCheck(False, "untranslated")
    if _in_the_other_script(translation, target_lang):
        return TranslationCheck(False, "untranslated")
    translated_terms, translated_keys = name_terms(translation), _name_keys(translation)
    names = [name for start, end in split_sentences(quote) for name in names_in(quote[start:end]) if name_terms(name)]
    kept = [name for name in names if name_terms(name) & translated_terms or _name_keys(name) & translated_keys]
    if names and len(kept) / len(names) < _NAMES_KEPT:
        return TranslationCheck(False, "names")
    scores = np.asarray(similarity([translation], [quote, *others]), dtype=np.float64)[0]
    if scores[0] < min_similarity or (len(scores) > 1 and scores[0] <= scores[1:].max()):
        return TranslationCheck(False, "meaning")
    if alignment is not None and alignment(quote, translation) < min_alignment:
        return TranslationCheck(False, "alignment")
    return TranslationCheck(True)


def word_alignment(first: np.ndarray, second: np.ndarray) -> float:
    """How well two texts' tokens line up, given a unit vector per token (rows): each token is matched to its
    most similar token of the other text, and the two mean best matches are combined as an F1 (the greedy
    matching of BERTScore, Zhang et al. 2020; with a multilingual encoder it works across languages, as in
    SimAlign, Jalili Sabet et al. 2020). A translation that drops, adds or replaces a phrase leaves tokens
    with no good match, which a whole-sentence cosine averages away.

    On the default model's translations of 97 FLORES-200 sentences that passed every other check (labelled
    faithful or not by reading them, bench/labels/), this separates the unfaithful ones with an AUC of 0.79
    against 0.71 for the sentence cosine; on 31 such translations of NTREX-QA quotes, 0.92 against 0.79."""
    if len(first) == 0 or len(second) == 0:
        return 0.0
    similarities = np.asarray(first, dtype=np.float64) @ np.asarray(second, dtype=np.float64).T
    recall, precision = similarities.max(axis=1).mean(), similarities.max(axis=0).mean()
    return float(2 * recall * precision / (recall + precision)) if recall + precision > 0 else 0.0


def months_in(text: str) -> set[int]:
    """The months of the dates a text gives, in any of the three languages ("Sentyabrın 26-da", "26 сентября",
    "September 26" -> 9), so that a translation cannot move a date to another month. A month name counts only
    next to a number: "may" and "mart" are other words too."""
    tokens = _DATE_TOKEN.findall(text.lower())
    found = set()
    for i, token in enumerate(tokens):
        month = _month(token)
        neighbours = tokens[max(0, i - 1) : i] + tokens[i + 1 : i + 2]
        if month and any(t[0].isdigit() for t in neighbours):
            found.add(month)
    return found


def _month(word: str) -> int | None:
    for stem, month in _MONTH_STEMS:
        if word.startswith(stem) and len(word) - len(stem) <= 4:  # "sentyabrın", "сентября", "mayın", "mart"
            return month
    return None


def _common_words(quote: str, translation: str) -> set[str]:
    """Lower-case words of four letters or more that the translation copies from the quote: words a small model
    left untranslated ("the cooperation of beynəlxalq təşkilatlar"). Names are capitalised and numbers are not
    words, so neither counts."""

    def words(text: str) -> set[str]:
        return {w for w in _LOWER_WORD.findall(text) if len(w) >= 4}

    return words(quote) & words(translation)


def _in_the_other_script(translation: str, target_lang: str) -> bool:
    """Whether a translation keeps words it should have written in its own script: a word that mixes Latin and
    Cyrillic letters ("respondentов", "Тennesс"), Cyrillic in an English or Azerbaijani translation, or a
    lower-case Latin word in a Russian one ("был apparently выброшен"). Human translations almost never do
    (FLORES-200 and NTREX: none into English or Azerbaijani, 10 of 1,004 Russian sentences, mostly Latin
    terms such as "Karenia brevis"); of the small models' passing translations into Russian, 11 of 24 did, every
    one of them garbled (bench/README.md)."""
    if _MIXED_SCRIPT_WORD.search(translation):
        return True
    if target_lang == "ru":
        return bool(_LATIN_LOWER_WORD.search(translation))
    return bool(_CYRILLIC.search(translation))


def _name_keys(text: str) -> frozenset[str]:
    """What a name is also matched by: its words' first letters, and the places it names, whose names differ
    across the languages (exonyms.py: "Almaniya" / "Германия")."""
    return name_stems(text) | place_ids(text)


def _joined_thousands(text: str) -> str:
    """Digit groups written apart joined ("2 500", "2,500", "2.500" -> "2500"), as languages separate them
    differently; a decimal part ("16,5") is left alone."""
    return _THOUSANDS.sub("", text)


def answer_from_quotes(
    quotes: Sequence[Evidence], translations: Mapping[int, str | None], lang: str
) -> tuple[str, list[Citation], str]:
    """The answer text, its citations and its mode from the chosen evidence.

    `translations` maps an evidence number to its checked translation (None: it failed the check) for every
    quote in another language than `lang`. When every quote can be read in `lang` (it is in `lang`, or its
    translation passed), the answer is those sentences, each followed by its marker, and the mode is
    "generated" if any is a translation. Otherwise the quotes are shown verbatim behind one fixed phrase in
    `lang` ("extractive"), with whatever translations passed attached to their citations."""
    citations = [_citation(i, item, item.score, translations.get(item.n)) for i, item in enumerate(quotes, 1)]
    readable = all(item.n not in translations or translations[item.n] for item in quotes)
    if readable:
        sentences = [_with_marker(translations.get(item.n) or item.quote, i) for i, item in enumerate(quotes, 1)]
        mode = "generated" if any(translations.get(item.n) for item in quotes) else "extractive"
        return " ".join(sentences), citations, mode
    intro = EXTRACTIVE_INTRO.get(lang, EXTRACTIVE_INTRO["en"])
    # The quote's own full stop moves after the marker, so the marker stays inside its sentence.
    quoted = " ".join(f"«{item.quote.strip().rstrip('.')}» {marker(i)}." for i, item in enumerate(quotes, 1))
    return f"{intro} {quoted}", citations, "extractive"


def _with_marker(sentence: str, n: int) -> str:
    body = sentence.strip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} {marker(n)}{end}"


def refusal(lang: str) -> str:
    return REFUSAL.get(lang, REFUSAL["en"])


def _citation(n: int, item: Evidence, score: float, translation: str | None = None) -> Citation:
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
        translation=translation,
    )
