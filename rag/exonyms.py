"""Places and bodies whose names differ across Azerbaijani, Russian and English (Almaniya / Германия / Germany).

The translation check (grounding.check_translation) looks for a quote's names in its translation by their
transliterated letters, which cannot see that "Almaniya" and "Германия" name one country, or "ABŞ" and "США" and
"US" another: such names made the check turn away human translations (FLORES-200, see bench/README.md). Countries
come from pycountry, the ISO 3166 names with their Russian and Azerbaijani translations (Debian's iso-codes data);
listed here are only the names no country list holds: abbreviations, continents, the Earth, the Sun and the Moon.
The only module that imports pycountry.
"""

from __future__ import annotations

import functools
import gettext
import re

from .lexical import normalise_word

# Names no country list holds, one group per place, in the three languages and the forms news uses.
_NOT_COUNTRIES = (
    ("United States", "USA", "US", "U.S.", "США", "ABŞ", "Amerika Birləşmiş Ştatları", "Соединённые Штаты"),
    ("United Kingdom", "UK", "Britain", "British", "Великобритания", "Британия", "Britaniya", "Birləşmiş Krallıq"),
    ("United Nations", "UN", "ООН", "BMT"),
    ("European Union", "EU", "ЕС", "Евросоюз", "Aİ", "Avropa İttifaqı"),
    ("NATO", "НАТО"),
    ("Europe", "European", "Европа", "Avropa"),
    ("Asia", "Asian", "Азия", "Asiya"),
    ("Earth", "Земля", "Yer"),
    ("Sun", "Солнце", "Günəş"),
    ("Moon", "Луна", "Ay"),
    ("Russia", "Россия", "Rusiya"),
    ("Turkey", "Türkiye", "Турция", "Türkiyə"),
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_FILLERS = frozenset({"of", "the", "and", "i", "ve"})  # "и" and "və" fold to "i" and "ve"
# A place's word is found in a text as the start of a word: the word without its final vowels, and at least
# SHORTEST letters, so that grammatical endings may follow ("Китай" -> "Китае", "Almaniya" -> "Almaniyanın").
# Shorter words ("US", "ABŞ", "Ay") are compared whole, and only when written with a capital, so that "us" or "ay"
# (month) in running text do not count.
SHORTEST = 4


def place_ids(text: str) -> frozenset[str]:
    """Which of the places known here `text` names: "#<n>" ids, equal across languages. A place is named when
    every word of one of its names is there ("North Korea" needs both words; "Kanye West" is not "West Bank").

    >>> place_ids("Almaniyanın") == place_ids("в Германии") == place_ids("Germany") != frozenset()
    True
    >>> place_ids("Kanye West") | place_ids("Sainsbury's") | place_ids("Usmanov")
    frozenset()
    """
    words = _words(text, require_capital=True)
    by_start = _index()
    found = set()
    for word in words:
        for place, name in by_start.get(word[:SHORTEST], ()):
            if place not in found and all(any(_starts(w, part) for w in words) for part in name):
                found.add(place)
    return frozenset(f"#{place}" for place in found)


def _starts(word: str, part: str) -> bool:
    return word.startswith(part) if len(part) >= SHORTEST else word == part


def _words(text: str, *, require_capital: bool) -> set[str]:
    words = set()
    for match in _WORD.finditer(text):
        word = normalise_word(match.group())
        if word in _FILLERS or not word:
            continue
        if len(word) >= SHORTEST or match.group()[0].isupper() or not require_capital:
            words.add(word)
    return words


def _parts(name: str) -> tuple[str, ...]:
    """What each word of a place's name must start a word of the text with: the word without the vowels it ends
    in, where the endings change ("Земля" -> "zeml": "Земли"; "Турция" -> "turts": "Турции")."""
    return tuple(sorted(_stem(w) for w in _words(name, require_capital=False)))


def _stem(word: str) -> str:
    if len(word) < SHORTEST:
        return word
    return word[: max(SHORTEST, len(word.rstrip("aeiouy")))]


@functools.cache
def _index() -> dict[str, list[tuple[int, tuple[str, ...]]]]:
    """Every name of every place, found by the first letters of its words: {start: [(place, parts)]}."""
    import pycountry

    translations = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        for lang in ("ru", "az")
    ]
    groups = [
        {country.name, getattr(country, "common_name", country.name)} | {t.gettext(country.name) for t in translations}
        for country in pycountry.countries
    ]
    groups += [set(names) for names in _NOT_COUNTRIES]
    by_start: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for place, names in enumerate(groups):
        for parts in {_parts(name) for name in names} - {()}:
            for part in parts:
                by_start.setdefault(part[:SHORTEST], []).append((place, parts))
    return by_start
