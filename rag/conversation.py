"""Follow-up questions: "And what did Kyrgyzstan say?" means nothing to a search engine on its own.

A question that leans on the conversation is rewritten into a standalone one before retrieval, by the chat
model, and the rewrite is checked: it must keep the follow-up's language, names and numbers and stay short.
When the model's rewrite fails the check, the previous question is appended to the follow-up instead, which
retrieval handles well (the dense model reads both). A question that names its own subject is left as it is:
in a conversation it gets the answer it gets alone (bench/conversations.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .grounding import is_question_word, names_in, numbers_in, question_names
from .language import detect_language
from .lexical import STOPWORDS, name_terms, normalise_word
from .prompts import rewrite_messages
from .question import ANSWER_LANGUAGES

# A question that opens with one of these continues the conversation, whatever else it holds.
_OPENING = re.compile(
    r"^\s*(and|also|what about|how about|and what|then|а|и|а что|ещё|еще|также|bəs|və|həmçinin|onda)\b",
    re.IGNORECASE,
)
# Words that point back at something said before, in the three languages.
_REFERENCE = re.compile(
    r"\b(he|she|it|its|they|him|her|them|his|their|this|that|these|those|there|"
    r"он|она|оно|они|его|её|ее|их|ему|ей|им|этот|эта|это|эти|там|"
    r"o|onun|onlar|onların|ona|bu|həmin|orada)\b",
    re.IGNORECASE,
)
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_BARE = 2  # words: "Kyrgyzstan?" or "Why?" after another question can only mean something with it
_SHORT = 6  # words: a short question that names nothing ("When was it signed?") leans on the one before


def is_follow_up(question: str, history: list[dict]) -> bool:
    """Whether `question` needs the conversation to be understood: it opens with "and", "what about" (or the
    like, in the three languages) or is one or two words; or it names no one and nothing of its own (no name,
    no number) and either points back ("he", "they", "там", "o") or is short.

    A question that names its own subject is a new question, even when it is short ("Кто возглавлял делегацию
    Узбекистана?") or says "he" about a name it gives ("How did the crowd react when Trump mentioned ..."):
    rewriting such questions with an unrelated conversation changed 10 of the 20 answers where it happened,
    and made none right that was wrong alone (bench/conversations.py)."""
    if not any(turn.get("role") == "user" for turn in history):
        return False
    if _OPENING.search(question) or len(question.split()) <= _BARE:
        return True
    if _names_something(question):
        return False
    return len(question.split()) <= _SHORT or bool(_REFERENCE.search(question))


def _names_something(question: str) -> bool:
    """A name after the first word, a number, or a first word that is a name. A capitalised first word is
    grammar as often as a name: it counts as one when it is an acronym ("İƏT-in ...", "OIC's ..."), or when it is
    no question word or common word and nothing in the question points back ("Bayramov kimlə görüşüb?",
    "Uzbekistan said what?"; not "Послом какой страны он является?", which asks about "он")."""
    if names_in(question) or numbers_in(question):
        return True
    first = re.match(r"[^\W\d_]+", question.strip(" ¿¡\"'«“("))
    if not first or len(first.group()) < 2 or not first.group()[0].isupper():
        return False
    word = first.group()
    if word.isupper():
        return True
    common = is_question_word(word) or normalise_word(word) in STOPWORDS
    return not common and not _REFERENCE.search(question)


def previous_question(history: list[dict]) -> str:
    for turn in reversed(history):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return ""


def conversation_language(question: str, history: list[dict]) -> str | None:
    """The language to answer a follow-up of one or two words in: the conversation's (its last question's),
    when the follow-up is written in the same alphabet. So few words cannot tell English from Azerbaijani
    ("Kyrgyzstan?" reads as Azerbaijani); a follow-up in the other alphabet ("Кыргызстан?") has its own
    language. None: answer in the question's own language."""
    previous = previous_question(history)
    same_alphabet = bool(_CYRILLIC.search(question)) == bool(_CYRILLIC.search(previous))
    if not previous or len(question.split()) > _BARE or not same_alphabet:
        return None
    lang = detect_language(previous)
    return lang if lang in ANSWER_LANGUAGES else None


def acceptable_rewrite(rewrite: str, question: str) -> bool:
    """The rewrite keeps the follow-up's language, names and numbers, is one line and not much longer than
    needed. A rewrite in another language is a translation by a small model, not a rewording: the asker's
    words are lost and a wrong sense slips in unchecked ("С каким министром Кыргызстана встретился Байрамов?"
    came back as "Who did Bayramov meet with at the Ministry of Foreign Affairs of Kyrgyzstan?")."""
    if not rewrite or "\n" in rewrite.strip() or len(rewrite) > 3 * len(question) + 200:
        return False
    # One or two words ("Kyrgyzstan?") are too few to tell English from Azerbaijani by.
    if len(question.split()) > _BARE and detect_language(rewrite) != detect_language(question):
        return False
    rewrite_terms = name_terms(rewrite)
    for name in question_names(question):
        terms = name_terms(name)
        if terms and not terms & rewrite_terms:
            return False
    return numbers_in(question) <= numbers_in(rewrite)


def standalone_question(question: str, history: list[dict] | None, generate: Callable[[list[dict]], str]) -> str:
    """The question made standalone using the conversation; the question itself when it needs no context."""
    history = history or []
    if not is_follow_up(question, history):
        return question
    previous = previous_question(history)
    rewrite = generate(rewrite_messages(question, history)).strip().strip('"“”«»').strip()
    rewrite = re.sub(r"^(standalone question|question|вопрос|sual)\s*:\s*", "", rewrite, flags=re.IGNORECASE)
    if acceptable_rewrite(rewrite, question):
        return rewrite
    return f"{question} ({previous})" if previous else question
