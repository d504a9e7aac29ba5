"""Places named differently in az, ru and en (rag/exonyms.py), as the translation check uses them."""

from __future__ import annotations

import pytest

from rag.exonyms import place_ids
from rag.lexical import name_stems


@pytest.mark.parametrize(
    "forms",
    [
        ("Almaniyanın", "в Германии", "Germany"),  # pycountry's names, with grammatical endings
        ("Çin", "Китае", "China"),
        ("ABŞ-a", "США", "US", "the United States"),  # the list of names no country list holds
        ("BMT-nin", "ООН", "the UN"),
        ("Yer", "Земли", "Earth"),
        ("Türkiyə", "Турции", "Turkey"),  # Russian endings replace the final vowels
        ("Meksikanın", "в Мексике", "Mexico"),
    ],
)
def test_one_place_has_one_id_in_every_language(forms):
    ids = [place_ids(form) for form in forms]
    assert ids[0] and all(i & ids[0] for i in ids), dict(zip(forms, ids, strict=True))


@pytest.mark.parametrize(
    "text",
    [
        "Kanye West",  # one word of "West Bank" is not the place
        "Sainsbury's",
        "Usmanov",  # "US" counts only as a whole word
        "one of us came a month (bir ay) later",  # short names count only when capitalised
    ],
)
def test_words_that_only_start_like_a_place_name_none(text):
    assert place_ids(text) == frozenset()


def test_name_stems_are_the_first_four_folded_letters():
    assert name_stems("Afrikanın") == name_stems("Africa") == {"afri"}
    assert name_stems("Надала") & name_stems("Nadalın")
    assert name_stems("Abc 12 of") == frozenset()  # short words and numbers have none
