"""The lexical channel: BM25 (bm25s) over tokens that fit Azerbaijani, Russian and English.

Why this tokenisation:
- Azerbaijani lowercasing maps I -> ı and İ -> i (Python's str.lower() turns İ into "i" plus a combining dot).
- Letters are then folded to plain Latin (ə -> e, ı -> i, ş -> s, ö -> o ...), and Cyrillic is transliterated,
  so that people who type without diacritics still match, and so that names written in two scripts meet:
  "Байрамов" and "Bayramov" both become "bayram...".
- Azerbaijani and Russian build word forms with suffixes ("Özbəkistanla", "Özbəkistanın"; "консультации",
  "консультациях"), so exact tokens miss much. Truncating every word to its first few letters is a known, robust
  stemmer for suffixing languages (it does as well as rule-based stemmers for Turkish), and it needs no decision
  about which language a token is in, so a question and a passage in different languages are treated alike.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import bm25s
import numpy as np

TOKENIZER_VERSION = "prefix6-translit-names-v1"  # stored in the index manifest: changing tokenisation forces a rebuild
PREFIX_LENGTH = 6

_WORD = re.compile(r"\w+", re.UNICODE)

_FOLD = str.maketrans(
    {
        "ə": "e", "ı": "i", "ş": "s", "ç": "c", "ğ": "g", "ö": "o", "ü": "u", "â": "a", "î": "i", "û": "u",
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
        "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
        "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y",
        "ь": "", "э": "e", "ю": "yu", "я": "ya", "і": "i", "ў": "u", "ј": "y", "ә": "e", "ғ": "g", "қ": "k",
        "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h",
    }
)  # fmt: skip

# Words so frequent in news that they only add noise to a short query. BM25's idf already discounts common
# words; this list keeps short questions ("What did ... say?") from being scored on their question words.
_STOPWORDS_RAW = """
a an and are as at be been but by did do does for from had has have he her his how in into is it its of on or
she that the their them they this to was were what when where which who whom why will with would about said say
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня
еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам ведь там
потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже
себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы нее были
куда зачем всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего них
какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда
конечно всю между также заявил сказал
və ilə bu da də ki bir o üçün olan olub olaraq isə ya hər nə kim harada hansı necə niyə nə vaxt edib edilib
bildirib bildirilib qeyd olunub
"""


def _normalise(word: str) -> str:
    word = word.replace("I", "ı").replace("İ", "i").lower().translate(_FOLD)
    # Drop any remaining combining marks (é -> e) so that accents never split a word in two.
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


STOPWORDS = frozenset(_normalise(w) for w in _STOPWORDS_RAW.split())


# Names cross scripts with different vowels and spellings: Özbəkistan / Uzbekistan / Узбекистан,
# Xələfov / Khalafov / Халафов, Ceyhun / Jeyhun / Джейхун. Their consonant skeleton mostly survives, so every
# capitalised word also yields a "name key": the first consonants after folding sounds that the three
# alphabets write differently into one letter. It is prefixed with "~" so it never collides with a word.
_NAME_SOUNDS = (("dzh", "j"), ("zh", "j"), ("kh", "h"), ("sch", "s"), ("sh", "s"), ("ch", "c"), ("ts", "s"))
_NAME_LETTERS = str.maketrans({"x": "h", "q": "k", "c": "j", "w": "v", "z": "z", "g": "g", "d": "t", "b": "p"})
_VOWELS = set("aeiouy")
NAME_KEY_LENGTH = 4


def name_key(folded: str) -> str | None:
    """Consonant skeleton of a folded, transliterated name ("ozbekistan" -> "~zpks"), or None if too short."""
    for sounds, letter in _NAME_SOUNDS:
        folded = folded.replace(sounds, letter)
    consonants = [ch for ch in folded.translate(_NAME_LETTERS) if ch.isalpha() and ch not in _VOWELS]
    deduped = [ch for i, ch in enumerate(consonants) if i == 0 or ch != consonants[i - 1]]
    return "~" + "".join(deduped[:NAME_KEY_LENGTH]) if len(deduped) >= 2 else None


def tokenize(text: str) -> list[str]:
    """Text -> index terms: Azerbaijani-aware lowercase, folded, transliterated, truncated; stopwords dropped.

    >>> tokenize("Özbəkistanla İLHAM Байрамов 14-də")
    ['ozbeki', '~zpks', 'ilham', '~lhm', 'bayram', '~prmv', '14']
    """
    terms = []
    for match in _WORD.finditer(text):
        original = match.group()
        word = _normalise(original)
        if not word or word in STOPWORDS or word == "_":
            continue
        terms.append(word if word.isdigit() else word[:PREFIX_LENGTH])
        if original[0].isupper() and len(word) >= 4 and word.isalpha():
            key = name_key(word)
            if key:
                terms.append(key)
    return terms


class LexicalIndex:
    """BM25 over passages, addressed by passage row (the same rows as the dense index)."""

    def __init__(self, bm25: bm25s.BM25 | None, size: int):
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, passage_texts: list[str]) -> LexicalIndex:
        if not passage_texts:
            return cls(None, 0)
        bm25 = bm25s.BM25(k1=1.2, b=0.75)
        bm25.index([tokenize(t) for t in passage_texts], show_progress=False)
        return cls(bm25, len(passage_texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query (zeros when no query term is in the index)."""
        if self._bm25 is None:
            return np.zeros(0, dtype=np.float32)
        ids = self._bm25.get_tokens_ids([t for t in tokenize(query) if t])
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        if size == 0:
            return cls(None, 0)
        bm25 = bm25s.BM25.load(str(folder), mmap=False, show_progress=False, verbosity=0)
        return cls(bm25, size)
