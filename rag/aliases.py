"""Acronyms across languages (OIC = İƏT = ОИС), learnt from the corpus itself.

News spells an organisation's name out once, with its acronym in brackets, and uses the acronym after that:
"Organization of Islamic Cooperation (OIC)", "İslam Əməkdaşlıq Təşkilatının (İƏT)", "Организации исламского
сотрудничества (ОИС)". An English question that says "OIC" shares no word with an Azerbaijani article that says
"İƏT", and the small embedding model does not know that they name one thing. The spelled-out names, though,
are translations of each other, and those the model does match.

So at build time each document's definitions are collected (after Schwartz & Hearst, "A simple algorithm for
identifying abbreviation definitions in biomedical text", 2003: the acronym's letters are the initials of the
words just before the bracket), and acronyms of two languages are linked when their long forms are each
other's nearest neighbour across those languages and similar enough. At search time an acronym in the question
is written out, for the passages of each other language, as that language's long form and acronym; the
lexical channel also gets the other languages' acronyms.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .text import fold_dotted_i
from .types import Document

# Long forms of one organisation in two languages score about 0.90-0.94 with multilingual-e5-small; unrelated
# organisation names stay below about 0.88 even when they share a word ("... Təşkilatı"). Mutual nearest
# neighbours above this bar were all right on the seeds and the NTREX articles (tests/test_aliases.py).
LINK_THRESHOLD = 0.88

_UPPER = "A-ZÀ-ÖØ-ÞƏİĞŞÇÖÜА-ЯЁ"
_ACRONYM = rf"[{_UPPER}][{_UPPER}a-zа-яёə&]{{1,9}}"
_DEFINITION = re.compile(rf"\((?P<acronym>{_ACRONYM})\)")
_REVERSE = re.compile(rf"\b(?P<acronym>{_ACRONYM})\s*\((?P<long>[^()]{{4,120}})\)")
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
# A sentence boundary or other bracket ends the search for the long form.
_STOP = re.compile(r"[.!?;:()\[\]\n]")


@dataclass(frozen=True)
class Alias:
    """One language's name for something: the acronym and its spelled-out form as the documents write it."""

    lang: str
    acronym: str
    long_form: str


@dataclass
class AliasTable:
    """Groups of aliases that name the same thing in different languages (at most one per language)."""

    groups: list[list[Alias]] = field(default_factory=list)
    # Every long form seen (linked or not) with its vector, so that the next build encodes only new ones.
    known: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_acronym: dict[str, list[int]] = defaultdict(list)
        for number, group in enumerate(self.groups):
            for alias in group:
                self._by_acronym[alias.acronym].append(number)

    def __len__(self) -> int:
        return len(self.groups)

    def mentioned(self, text: str) -> list[tuple[str, list[Alias]]]:
        """The known acronyms written in `text` (as whole words, same case), each with its group."""
        tokens = set(re.findall(r"[\w&]+", text)) & set(self._by_acronym)
        return [(token, self.groups[number]) for token in sorted(tokens) for number in self._by_acronym[token]]

    def query_variants(self, query: str) -> dict[str, str]:
        """For each language whose acronym differs from one in the question, the question written its way.

        "What did the OIC condemn?" -> {"az": "What did the İslam Əməkdaşlıq Təşkilatının (İƏT) condemn?"}."""
        variants: dict[str, str] = {}
        for token, group in self.mentioned(query):
            for alias in group:
                if alias.acronym == token:
                    continue
                text = variants.get(alias.lang, query)
                replacement = f"{alias.long_form} ({alias.acronym})"
                variants[alias.lang] = re.sub(rf"(?<!\w){re.escape(token)}(?!\w)", lambda _m, r=replacement: r, text)
        return variants

    def equivalents(self, text: str) -> dict[str, list[str]]:
        """For each known acronym in `text`, the other languages' acronyms for the same thing."""
        found: dict[str, list[str]] = defaultdict(list)
        for token, group in self.mentioned(text):
            found[token] += [a.acronym for a in group if a.acronym != token]
        return dict(found)

    def lexical_terms(self, query: str) -> list[str]:
        """The other languages' acronyms for those in the question, for the lexical channel."""
        return sorted({a.acronym for token, group in self.mentioned(query) for a in group if a.acronym != token})

    def to_json(self) -> dict:
        return {"groups": [[vars(a) for a in group] for group in self.groups]}

    @classmethod
    def from_json(cls, data: dict, known: dict[tuple[str, str], np.ndarray] | None = None) -> AliasTable:
        return cls([[Alias(**a) for a in group] for group in data.get("groups", [])], known or {})


def find_definitions(text: str) -> list[tuple[str, str]]:
    """(acronym, long form) pairs the text defines, as "Long Form (LF)" or "LF (Long Form)"."""
    found = []
    for match in _DEFINITION.finditer(text):
        acronym = match.group("acronym")
        if _is_acronym(acronym):
            long_form = _long_form_before(text, match.start(), acronym)
            if long_form:
                found.append((acronym, long_form))
    for match in _REVERSE.finditer(text):
        acronym, inside = match.group("acronym"), match.group("long").strip()
        if _is_acronym(acronym) and _initials_match(_WORD.findall(inside), acronym):
            found.append((acronym, inside))
    return found


def _is_acronym(token: str) -> bool:
    return sum(ch.isupper() for ch in token) >= 2


def _long_form_before(text: str, bracket: int, acronym: str) -> str | None:
    """The shortest run of words just before `bracket` whose initials spell `acronym`."""
    window_start = max(0, bracket - 200)
    window = text[window_start:bracket]
    stops = list(_STOP.finditer(window))
    if stops:
        window_start += stops[-1].end()
        window = text[window_start:bracket]
    words = list(_WORD.finditer(window))
    letters = _letters(acronym)
    for count in range(1, min(len(words), 2 * len(letters) + 2) + 1):
        chosen = words[-count:]
        if _initials_match([w.group() for w in chosen], acronym):
            return window[chosen[0].start() : chosen[-1].end()]
    return None


def _letters(acronym: str) -> list[str]:
    return [_fold(ch) for ch in acronym if ch.isalpha()]


def _fold(ch: str) -> str:
    # Azerbaijani İ/ı and Latin I/i must meet: both sides compare as plain upper-case letters without dots.
    return fold_dotted_i(ch).upper()


def _is_function_word(word: str) -> bool:
    # "of", "and", "the", "for", "in" (en); "и", "по", "за" (ru); "və" (az): lower-case words the acronym skips.
    return word.islower() and len(word) <= 3


def _initials_match(words: list[str], acronym: str) -> bool:
    """Do the content words' initials spell the acronym? The first word must be one of them."""
    if not words or _is_function_word(words[0]):
        return False
    initials = [_fold(w[0]) for w in words if not _is_function_word(w)]
    return initials == _letters(acronym)


def learn(
    documents: Iterable[Document],
    encode: Callable[[list[str]], np.ndarray],
    previous: AliasTable | None = None,
    threshold: float = LINK_THRESHOLD,
) -> AliasTable:
    """Collect the corpus's definitions and link acronyms of different languages that name the same thing.

    `encode` turns long forms into normalised vectors; it is called only for long forms `previous` has not
    seen, and not at all when fewer than two languages define acronyms (nothing could be linked)."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for doc in documents:
        for acronym, long_form in find_definitions(doc.text):
            counts[(doc.lang, acronym)][long_form] += 1
    aliases = [Alias(lang, acronym, forms.most_common(1)[0][0]) for (lang, acronym), forms in sorted(counts.items())]
    if len({a.lang for a in aliases}) < 2:
        return AliasTable([], {})
    known = dict(previous.known) if previous is not None else {}
    missing = sorted({(a.lang, a.long_form) for a in aliases} - set(known))
    if missing:
        vectors = np.asarray(encode([form for _, form in missing]), dtype=np.float32)
        known.update(zip(missing, vectors, strict=True))
    wanted = {(a.lang, a.long_form) for a in aliases}
    known = {key: vec for key, vec in known.items() if key in wanted}
    return AliasTable(_link(aliases, known, threshold), known)


def _link(aliases: list[Alias], vectors: dict[tuple[str, str], np.ndarray], threshold: float) -> list[list[Alias]]:
    """Groups of aliases joined by mutual-nearest-neighbour links between each pair of languages."""
    by_lang: dict[str, list[Alias]] = defaultdict(list)
    for alias in aliases:
        by_lang[alias.lang].append(alias)
    langs = sorted(by_lang)
    parent = {alias: alias for alias in aliases}

    def root(alias: Alias) -> Alias:
        while parent[alias] != alias:
            parent[alias] = parent[parent[alias]]
            alias = parent[alias]
        return alias

    links: list[tuple[float, Alias, Alias]] = []
    for i, lang_a in enumerate(langs):
        for lang_b in langs[i + 1 :]:
            left, right = by_lang[lang_a], by_lang[lang_b]
            a = np.stack([vectors[(x.lang, x.long_form)] for x in left])
            b = np.stack([vectors[(x.lang, x.long_form)] for x in right])
            scores = a @ b.T
            best_right, best_left = scores.argmax(axis=1), scores.argmax(axis=0)
            for row, col in enumerate(best_right):
                if best_left[col] == row and scores[row, col] >= threshold:
                    links.append((float(scores[row, col]), left[row], right[col]))
    # Strongest links first, and a group never takes a second acronym of a language it already has.
    langs_of: dict[Alias, set[str]] = {alias: {alias.lang} for alias in aliases}
    for _, x, y in sorted(links, key=lambda link: -link[0]):
        rx, ry = root(x), root(y)
        if rx != ry and not (langs_of[rx] & langs_of[ry]):
            parent[ry] = rx
            langs_of[rx] |= langs_of.pop(ry)
    groups: dict[Alias, list[Alias]] = defaultdict(list)
    for alias in aliases:
        groups[root(alias)].append(alias)
    return [sorted(g, key=lambda a: a.lang) for g in groups.values() if len(g) > 1]
