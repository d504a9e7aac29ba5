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
_FILLERS = frozenset({"of", "the", "and"})
# Words shorter than this are compared whole, and only when written with a capital ("US", "ABŞ", "Ay"), so that
# "us" or "ay" (month) in running text do not count; longer ones by their first STEM letters, as grammatical
# endings follow ("Германии", "Almaniyanın").
STEM = 4


def place_ids(text: str) -> frozenset[str]:
    """Which of the places known here `text` names: "#<n>" ids, equal across languages.

    >>> place_ids("Almaniyanın") == place_ids("в Германии") == place_ids("Germany") != frozenset()
    True
    """
    keys = _keys(text)
    return frozenset(f"#{n}" for n, place in enumerate(_places()) if place & keys)


def _keys(text: str, *, require_capital: bool = True) -> set[str]:
    keys = set()
    for match in _WORD.finditer(text):
        word = normalise_word(match.group())
        if len(word) >= STEM:
            keys.add(word[:STEM])
        elif word and (match.group()[0].isupper() or not require_capital):
            keys.add(word)
    return keys


@functools.cache
def _places() -> tuple[frozenset[str], ...]:
    """Each place as the keys of its first significant word in every form ("United States" -> "unit")."""
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
    places = []
    for names in groups:
        keys = set()
        for name in names:
            words = [w for w in _WORD.findall(name) if normalise_word(w) not in _FILLERS]
            if words:
                keys |= _keys(words[0], require_capital=False)
        places.append(frozenset(keys))
    return tuple(places)
