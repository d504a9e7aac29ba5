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
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import bm25s
import numpy as np

from .text import fold_dotted_i

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


def normalise_word(word: str) -> str:
    """A word as the index compares it: lower case with the four i's as one, Cyrillic and Azerbaijani letters
    folded to Latin ones, accents dropped ("Байрамов" -> "bayramov", "Özbəkistanın" -> "ozbekistanin")."""
    word = fold_dotted_i(word).lower().translate(_FOLD)
    # Drop any remaining combining marks (é -> e) so that accents never split a word in two.
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


STOPWORDS = frozenset(normalise_word(w) for w in _STOPWORDS_RAW.split())


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
        word = normalise_word(original)
        if not word or word in STOPWORDS or word == "_":
            continue
        terms.append(word if word.isdigit() else word[:PREFIX_LENGTH])
        if original[0].isupper() and len(word) >= 4 and word.isalpha():
            key = name_key(word)
            if key:
                terms.append(key)
    return terms


def name_terms(text: str) -> frozenset[str]:
    """The terms a name is matched by, across scripts and word forms: a name is mentioned in a text when the
    name's terms and the text's share one. They are the index terms (`tokenize`): folded, transliterated and
    truncated, with a sound key for a capitalised word, so that "Özbəkistanın" meets "Uzbekistan" and
    "Байрамов" meets "Bayramov". A name made only of stopwords has none.

    >>> sorted(name_terms("Özbəkistanın")), sorted(name_terms("Uzbekistan"))
    (['ozbeki', '~zpks'], ['uzbeki', '~zpks'])
    """
    return frozenset(tokenize(text))


def name_stems(text: str, length: int = 4) -> frozenset[str]:
    """The first `length` letters of each folded, transliterated word of at least that many letters: a looser
    match than `name_terms` for names whose forms part after their start across languages and cases: "Afrikanın"
    and "Africa" share "afri", "Германии" and "Germany" "germ"; "Австралии" and "Australia" still differ.

    >>> sorted(name_stems("Afrikanın")), sorted(name_stems("Africa"))
    (['afri'], ['afri'])
    """
    words = (normalise_word(match.group()) for match in _WORD.finditer(text))
    return frozenset(word[:length] for word in words if len(word) >= length and word.isalpha())


class LexicalIndex:
    """BM25 over passages, addressed by passage row (the same rows as the dense index)."""

    def __init__(self, bm25: bm25s.BM25 | None, size: int):
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, passage_texts: Iterable[str]) -> LexicalIndex:
        """BM25 over the passages, read one at a time: a generator keeps a big corpus's texts out of memory.

        Each passage's terms become 4-byte ids in one flat array as they are tokenised, so the tokens of a
        whole corpus never exist as Python strings at once (tens of bytes each, hundreds of MB for 100 MB of
        text); bm25s then reads them back one passage at a time."""
        vocab: dict[str, int] = {}
        ids = array("i")
        ends = array("q")
        for text in passage_texts:
            ids.extend(vocab.setdefault(term, len(vocab)) for term in tokenize(text))
            ends.append(len(ids))
        if not ends:
            return cls(None, 0)
        if not vocab:
            # Not one term in any passage (a corpus of punctuation): bm25s needs a vocabulary, and the empty
            # token, which no query ever has, scores nothing.
            vocab[""] = 0
        bm25 = bm25s.BM25(k1=1.2, b=0.75)
        with np.errstate(divide="ignore", invalid="ignore"):  # average passage length 0 in that same case
            bm25.index(_TermIds(ids, ends, vocab), show_progress=False)
        return cls(bm25, len(ends))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query (zeros when no query term is in the index)."""
        if self._bm25 is None:
            return np.zeros(0, dtype=np.float32)
        ids = self._bm25.get_tokens_ids([t for t in tokenize(query) if t])
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def vocabulary(self) -> dict[str, int]:
        """Term -> term id, the ids `passage_weights` uses."""
        return dict(self._bm25.vocab_dict) if self._bm25 is not None else {}

    def passage_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every passage's BM25 term weights as a CSR matrix (indptr over passages, term ids, weights).

        bm25s stores, per term, the finished weight idf * tf-part of each passage holding it, and scores a
        question by summing its terms' weights. Exported per passage, the same weights make a sparse vector
        whose inner product with the question's term counts is exactly that score."""
        if self._bm25 is None:
            return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        data, rows, term_ptr = (self._bm25.scores[k] for k in ("data", "indices", "indptr"))
        terms = np.repeat(np.arange(len(term_ptr) - 1, dtype=np.int64), np.diff(term_ptr))
        order = np.argsort(rows, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.size))]).astype(np.int64)
        return indptr, terms[order], np.asarray(data, dtype=np.float32)[order]

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


def query_term_counts(query: str, vocabulary: dict[str, int]) -> dict[int, int]:
    """The question's known terms as {term id: count}: the sparse vector that scores passages by BM25."""
    counts: dict[int, int] = {}
    for term in tokenize(query):
        term_id = vocabulary.get(term)
        if term and term_id is not None:
            counts[term_id] = counts.get(term_id, 0) + 1
    return counts


class _TermIds:
    """The corpus as bm25s reads token ids ("an object with `ids` and `vocab`"): `ids` is a sequence of each
    passage's term ids, made as a list only when bm25s asks for that passage."""

    def __init__(self, ids: array, ends: array, vocab: dict[str, int]):
        self.vocab = vocab
        self.ids = _Passages(np.frombuffer(ids, dtype=np.intc), np.frombuffer(ends, dtype=np.int64))


class _Passages(Sequence):
    def __init__(self, ids: np.ndarray, ends: np.ndarray):
        self._ids = ids
        self._starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, k):  # Sequence's own contract; bm25s only iterates
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return self._ids[self._starts[k] : self._ends[k]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for start, end in zip(self._starts.tolist(), self._ends.tolist(), strict=True):
            yield self._ids[start:end].tolist()
