"""Language of a document or of a question, as an ISO 639-1 code.

Azerbaijani, Russian and English must come out right; Azerbaijani must never be reported as Turkish, which
general-purpose identifiers confuse it with. Short texts (questions) are decided by script and by words that
belong to one language, long texts by py3langid over a fixed set of languages, then checked against
the same cues.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .text import word_set

_SAMPLE_CHARS = 5000
_SHORT_WORDS = 12
_DEFAULT = "en"


# Languages the identifier may answer with. Rare languages that it confuses with these on short or
# name-heavy texts (Crimean Tatar, Turkmen, Nigerian Pidgin...) are left out on purpose.
_LATIN = word_set("az tr en de fr es it pt nl pl cs sk ro hu sv da no fi et lv lt hr sl sq uz id ms vi ca eu gl")
_CYRILLIC = word_set("ru uk be bg kk ky mk sr mn tt tg ba")
_OTHER = word_set("ar fa ur he el hy ka zh ja ko hi bn ta th")
_TURKIC_OR_ENGLISH = word_set("az tr en")

_WORD = re.compile(r"[^\W\d_]+(?:['’`][^\W\d_]+)*")
_EN_WORDS = word_set(
    "the a an of and or to in on at for with from by about as is are was were be been has have had do "
    "does did what who whom whose which when where why how this that these those it its he she they his "
    "her their not will would can could should said says say after before than then there here also but "
    "into over"
)
_AZ_WORDS = word_set(
    "və ilə üçün nə necə harada hara haqqında hansı hansi kimə kimi niyə nədir neçə nəyi olub edib verib "
    "deyil görə isə ki bu onun onlar bildirib olunub keçirilib görüşüb harda haqda barədə arasında "
    "tərəfindən olaraq sonra əvvəl ildə xarici nazir naziri nazirliyi"
)
_TR_WORDS = word_set(
    "ve ile için değil nasıl nerede neden niçin şimdi çok gibi olarak bir şey hangi kimin yapılan türkiye "
    "ancak ama fakat ise"
)
# Endings that mark a word with Turkic letters as Azerbaijani (past tense -ib/-ıb/-ub/-üb, infinitive
# -maq/-mək, -dır, locative -da/-də) or as Turkish (present tense -yor, which Azerbaijani does not have).
_AZ_SUFFIX = re.compile(r"(?:[ıiuü]b|[dt][ıi]r|[ıiuü]r|maq|mək|da|də)$")
_TR_SUFFIX = re.compile(r"[ıiuü]yor(?:lar|um|sun|uz)?$")
_Q_WITHOUT_U = re.compile(r"q(?!u)")
_AZ_ONLY_LETTERS = "əƏ"
_UK_LETTERS = set("іїєґ")
_NOT_RUSSIAN = set("іїєґўәғқңөұүһҗҷҳјђћљњџѓќѕ")
_BG_HARD_SIGN = re.compile(r"[бвгджзклмнпрстфхцчшщ]ъ[бвгджзклмнпрстфхцчшщ]")
_AZ_CYRILLIC = set("ҹј")


def detect_language(text: str) -> str:
    """The ISO 639-1 code of the language of `text` ("az", "ru", "en", ...); "en" when it has no words."""
    sample = text[:_SAMPLE_CHARS]
    words = _WORD.findall(sample)
    if not words:
        return _DEFAULT
    script = _script(sample)
    if script == "cyrillic":
        return _cyrillic(sample, words)
    if script == "latin":
        return _latin(sample, words)
    return _identifier(_OTHER).classify(sample)[0]


def _script(text: str) -> str:
    latin = cyrillic = other = 0
    for ch in text:
        if not ch.isalpha():
            continue
        code = ord(ch)
        if code < 0x250 or 0x1E00 <= code < 0x1F00:
            latin += 1
        elif 0x400 <= code < 0x530:
            cyrillic += 1
        else:
            other += 1
    best = max(latin, cyrillic, other)
    if best == cyrillic:
        return "cyrillic"
    return "latin" if best == latin else "other"


def _cyrillic(text: str, words: list[str]) -> str:
    lowered = text.lower()
    if "ә" in lowered and set(lowered) & _AZ_CYRILLIC:
        return "az"
    # Russian needs no letter beyond the core Cyrillic alphabet, so a text is taken as another language
    # only when it shows that language's own letters, or Bulgarian's ъ between consonants (Russian writes ъ
    # only before е, ё, ю, я).
    if not set(lowered) & _NOT_RUSSIAN and not _BG_HARD_SIGN.search(lowered):
        return "ru"
    if len(words) < _SHORT_WORDS:
        return "uk" if set(lowered) & _UK_LETTERS else "ru"
    return _identifier(_CYRILLIC).classify(text)[0]


def _latin(text: str, words: list[str]) -> str:
    az, tr, en = _cue_scores(words)
    if len(words) < _SHORT_WORDS:
        if az or tr or en:
            if en > az + tr:
                return "en"
            return "tr" if tr > az else "az"
        lang = _identifier(_TURKIC_OR_ENGLISH).classify(text)[0]
    else:
        lang = _identifier(_LATIN).classify(text)[0]
    if lang == "tr" and az >= tr:
        return "az"
    if lang == "az" and tr > 2 * az:
        return "tr"
    return lang


def _cue_scores(words: list[str]) -> tuple[int, int, int]:
    """Counts of words that point to Azerbaijani, Turkish and English."""
    az = tr = en = 0
    for word in words:
        lower = word.lower().replace("i̇", "i")
        if any(c in _AZ_ONLY_LETTERS for c in word):
            az += 1
        elif lower in _EN_WORDS:
            en += 1
        elif lower in _TR_WORDS:
            tr += 1
        elif lower in _AZ_WORDS:
            az += 1
        elif _Q_WITHOUT_U.search(lower):
            # Azerbaijani writes q where Turkish writes k; English and Romance languages follow q with u.
            az += 1
        elif not lower.isascii():
            if _TR_SUFFIX.search(lower):
                tr += 1
            elif _AZ_SUFFIX.search(lower):
                az += 1
    return az, tr, en


@lru_cache(maxsize=8)
def _identifier(languages: frozenset[str]):
    from py3langid.langid import LanguageIdentifier

    ptc, pc, classes, nextmove, row, output = _model()
    identifier = LanguageIdentifier(ptc, pc, classes, nextmove, output, tk_row=row)
    identifier.set_languages(list(languages))
    return identifier


@lru_cache(maxsize=1)
def _model() -> tuple:
    """The identifier's model, read once (about half a second) and shared by every language subset."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE
    from py3langid.modelio import load_model

    return load_model(MODEL_DIR / MODEL_FILE)
