"""Small pure helpers for text that several steps share, so that their copies cannot drift apart."""

from __future__ import annotations

# Azerbaijani (and Turkish) write two i's: dotted İ/i and dotless I/ı. Python's case mapping is not made for
# them: str.lower() and casefold() turn İ into "i" plus a combining dot (U+0307) and leave ı apart from i. A
# reader treats all four as one letter, so a fold that compares words across case and spelling maps them to "i".
_DOTTED_I = str.maketrans({"İ": "i", "I": "i", "ı": "i", "\u0307": None})


def fold_dotted_i(text: str) -> str:
    """İ, I, ı and i as one lower-case "i", and the combining dot that lower-casing İ leaves dropped; every other
    character as it was. Apply before lower() or casefold().

    >>> fold_dotted_i("İLHAM Əliyev, Bakı")
    'iLHAM Əliyev, Baki'
    """
    return text.translate(_DOTTED_I)


def word_set(words: str) -> frozenset[str]:
    """A set of words written as one string separated by white space ("mr mrs dr" -> {"mr", "mrs", "dr"})."""
    return frozenset(words.split())
